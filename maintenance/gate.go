package maintenance

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/etcdops/etcdops/defrag"
	"github.com/etcdops/etcdops/health"
)

// check runs the checks of `etcdops health --cluster` and remembers the
// member list. Once it knows the list, it reads it from any voter, not
// only from the endpoints given: one of those may be the member that is down.
func (r *runner) check(ctx context.Context) (*health.Report, error) {
	cfg := r.o.Client
	cfg.Endpoints = slices.Clone(cfg.Endpoints)
	for _, m := range r.members {
		if !m.IsLearner { // learners answer no member list
			cfg.Endpoints = append(cfg.Endpoints, m.ClientURLs...)
		}
	}
	slices.Sort(cfg.Endpoints)
	cfg.Endpoints = slices.Compact(cfg.Endpoints)
	rep, err := health.Check(ctx, health.Options{Client: cfg, Cluster: true, Timeout: r.o.RequestTimeout, Logger: r.lg})
	if err != nil {
		return nil, fmt.Errorf("maintenance: %w", err)
	}
	if rep.Members != nil {
		r.members = rep.Members
	}
	return rep, nil
}

// statuses are every member's status as the report has them, in the
// member list's order, and the client URLs of the voters that answered.
func (r *runner) statuses(rep *health.Report) ([]defrag.MemberStatus, []string) {
	v := health.Evaluate(rep, health.DefaultThresholds())
	var out []defrag.MemberStatus
	var voters []string
	for _, m := range v.Summary.Members {
		s := defrag.MemberStatus{ID: defrag.MemberID(m.ID), Name: m.Name, IsLearner: m.IsLearner}
		if len(m.ClientURLs) > 0 {
			s.Endpoint = m.ClientURLs[0]
		}
		e := m.Endpoint
		switch {
		case !m.Started():
			s.Error = "not started"
		case e == nil || !e.Reachable:
			s.Error = m.State
			if e != nil && len(e.Errors) > 0 {
				s.Error = e.Errors[0]
			}
		default:
			s = memberStatus(s, e)
			if !e.IsLearner {
				voters = append(voters, e.Endpoint)
			}
		}
		if s.Name == "" {
			s.Name = fmt.Sprintf("%x", s.ID)
		}
		out = append(out, s)
	}
	return out, voters
}

// gate checks the cluster before a member: every voter up, one leader
// they all follow, no alarm other than NOSPACE (the one a defragmentation
// cures), and every member's applied index within o.MaxLag of the
// leader's. why is "" when the cluster may go on.
func (r *runner) gate(ctx context.Context) (*health.Report, string, error) {
	rep, err := r.check(ctx)
	if err != nil {
		return nil, "", err
	}
	return rep, unhealthy(rep, r.o.MaxLag), nil
}

// unhealthy says why the cluster is not fit for the next member, or "".
func unhealthy(rep *health.Report, maxLag uint64) string {
	v := health.Evaluate(rep, health.DefaultThresholds())
	var why []string
	if rep.DiscoveryError != "" {
		why = append(why, "member list: "+rep.DiscoveryError)
	}
	for _, m := range v.Summary.Members {
		if !m.IsLearner && !m.Up {
			why = append(why, fmt.Sprintf("member %s is %s%s", nameOr(m.Name, m.ID), m.State, firstError(m.Endpoint)))
		}
	}
	if v.Summary.Leader == 0 {
		why = append(why, "no leader that every member follows")
	}
	for _, a := range rep.Alarms {
		if a.Type != "NOSPACE" {
			why = append(why, fmt.Sprintf("alarm %s on member %s", a.Type, nameOf(rep.Members, a.MemberID)))
		}
	}
	if leader := endpointOf(rep, v.Summary.Leader); leader != nil {
		for _, e := range rep.Endpoints {
			if e.Reachable && leader.RaftAppliedIndex > e.RaftAppliedIndex+maxLag {
				why = append(why, fmt.Sprintf("member %s applied index %d is %d behind the leader's (more than %d)",
					nameOf(rep.Members, e.MemberID), e.RaftAppliedIndex, leader.RaftAppliedIndex-e.RaftAppliedIndex, maxLag))
			}
		}
	}
	return strings.Join(why, "; ")
}

func firstError(e *health.Endpoint) string {
	if e == nil || len(e.Errors) == 0 {
		return ""
	}
	return " (" + e.Errors[0] + ")"
}

// endpointOf is the reachable endpoint of member id in rep, or nil.
func endpointOf(rep *health.Report, id uint64) *health.Endpoint {
	i := slices.IndexFunc(rep.Endpoints, func(e health.Endpoint) bool { return e.Reachable && e.MemberID == id })
	if i < 0 || id == 0 {
		return nil
	}
	return &rep.Endpoints[i]
}

func nameOf(members []health.Member, id uint64) string {
	for _, m := range members {
		if m.ID == id {
			return nameOr(m.Name, id)
		}
	}
	return fmt.Sprintf("%x", id)
}

func nameOr(name string, id uint64) string {
	if name == "" {
		return fmt.Sprintf("%x", id)
	}
	return name
}

// memberStatus is s with the status e answered.
func memberStatus(s defrag.MemberStatus, e *health.Endpoint) defrag.MemberStatus {
	s.Endpoint, s.DBSize, s.DBSizeInUse, s.Quota = e.Endpoint, e.DBSize, e.DBSizeInUse, e.DBQuota
	s.IsLeader, s.IsLearner, s.Applied, s.Error = e.IsLeader, e.IsLearner, e.RaftAppliedIndex, ""
	return s
}
