package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/etcdops/etcdops/health"
)

// Gather reads the facts a plan is made from: a health check of every
// member (through the member list of the given endpoints) and the
// linearizable member list. ours are the peer URLs of members this
// migration added: they may be learners, and may not have started.
// stopped are the peer URLs of voters this migration stopped to drain them
// before their removal: they may be down.
func Gather(ctx context.Context, c Connection, endpoints []string, ours []string, stopped ...string) (Facts, *health.Report, error) {
	var f Facts
	hc := c.Client
	hc.Endpoints = endpoints
	in := func(urls []string) func(string) bool { return func(u string) bool { return slices.Contains(urls, u) } }
	// Our learners may not serve yet (receiving the database) and drained
	// members are down: a probe of either would only wait for its timeout.
	skip := func(m health.Member) bool {
		return m.IsLearner && slices.ContainsFunc(m.PeerURLs, in(ours)) || !m.IsLearner && slices.ContainsFunc(m.PeerURLs, in(stopped))
	}
	r, err := health.Check(ctx, health.Options{Client: hc, Cluster: true, Skip: skip, Timeout: c.Timeout})
	if err != nil {
		return f, nil, err
	}
	v := health.Evaluate(r, health.DefaultThresholds())
	var reachable []string
	for _, e := range r.Endpoints {
		if e.Reachable && !e.IsLearner { // learners answer no member list
			reachable = append(reachable, e.Endpoint)
		}
	}
	if len(reachable) == 0 {
		why := "no endpoint answered"
		if len(v.Reasons) > 0 {
			why = v.Reasons[0].Message
		}
		return f, r, fmt.Errorf("cluster unreachable: %s", why)
	}
	conn, err := c.Dial(reachable)
	if err != nil {
		return f, r, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	list, err := conn.MemberList(ctx)
	if err != nil {
		return f, r, fmt.Errorf("member list: %w", err)
	}
	f = Facts{ClusterID: list.Header.ClusterId, Leader: v.Summary.Leader, Unhealthy: unhealthy(r, v, ours, stopped)}
	versions := map[uint64]string{}
	for _, e := range r.Endpoints {
		if e.Reachable {
			versions[e.MemberID] = e.Version
		}
	}
	for _, m := range list.Members {
		f.Members = append(f.Members, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs,
			IsLearner: m.IsLearner, Version: versions[m.ID]})
	}
	return f, r, nil
}

// unhealthy says why the cluster may not be changed now, or "": every voter
// must be up, one leader followed by all, no alarm, no critical finding.
// Learners this migration added may be down or catching up.
func unhealthy(r *health.Report, v health.Verdict, ours, stopped []string) string {
	var why []string
	for _, reason := range v.Reasons {
		if reason.Status == health.Critical || reason.Status == health.Unknown {
			why = append(why, reason.Message)
		}
	}
	in := func(urls []string) func(string) bool { return func(u string) bool { return slices.Contains(urls, u) } }
	for _, m := range v.Summary.Members {
		ourLearner := m.IsLearner && slices.ContainsFunc(m.PeerURLs, in(ours))
		drained := !m.IsLearner && slices.ContainsFunc(m.PeerURLs, in(stopped))
		if !m.Up && !ourLearner && !drained {
			name := m.Name
			if name == "" {
				name = fmt.Sprintf("%x", m.ID)
			}
			why = append(why, fmt.Sprintf("member %s is %s", name, m.State))
		}
	}
	if v.Summary.Leader == 0 && len(why) == 0 {
		why = append(why, "no leader")
	}
	if len(r.Alarms) > 0 && len(why) == 0 {
		why = append(why, "an alarm is active")
	}
	return strings.Join(why, "; ")
}

// waitHealthy waits until the cluster may be changed: every voter up, one
// leader, no alarm.
func (r *runner) waitHealthy(ctx context.Context, i int) error {
	var why string
	var stopped []string
	r.stopped = nil
	if s := r.j.Plan.Steps[i]; (s.Action == Stop || s.Action == Remove) && r.j.Plan.Drains(s.Member) {
		if old := r.j.oldMember(s.Member); old != nil {
			stopped, r.stopped = old.PeerURLs, old.ClientURLs
		}
	}
	w := r.newWait(fmt.Sprintf("the cluster to be healthy before step %d", i+1))
	defer w.done()
	for {
		f, _, err := Gather(ctx, r.o.Connection, r.endpoints, r.ours, stopped...)
		switch {
		case err == nil && f.Unhealthy == "":
			r.useMembers(f.Members)
			return nil
		case err == nil:
			why = f.Unhealthy
			r.useMembers(f.Members)
		default:
			why = err.Error()
		}
		if err := w.sleep(ctx, why); err != nil {
			if errors.Is(context.Cause(ctx), context.Canceled) {
				return err
			}
			return fmt.Errorf("before step %d: cluster not healthy within %s: %s", i+1, r.o.StepTimeout, why)
		}
	}
}
