package migrate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/etcdops/etcdops/internal/atomicfile"
	"github.com/etcdops/etcdops/internal/memberconf"
)

// isErr reports whether err is etcd's error target, as the client returns it.
func isErr(err, target error) bool {
	return err != nil && (errors.Is(err, target) || rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(target))
}

// request runs f with the per-request timeout on a connection to endpoints.
func (r *runner) request(ctx context.Context, endpoints []string, f func(context.Context, Conn) error) error {
	conn, err := r.dial(endpoints)
	if err != nil {
		return err
	}
	defer conn.Close()
	rctx, cancel := context.WithTimeout(ctx, r.o.Connection.Timeout)
	defer cancel()
	return f(rctx, conn)
}

// addLearner adds nm as a learner, unless a member has its peer URL
// already (a run before, or an add whose reply was lost), and writes its
// configuration.
func (r *runner) addLearner(ctx context.Context, nm *NewMember) (bool, string, error) {
	members, err := r.list(ctx)
	if err != nil {
		return false, "", err
	}
	already := true
	m := byPeerURL(members, nm.PeerURL)
	for m == nil {
		already = false
		var addErr error
		if err := r.request(ctx, r.endpoints, func(ctx context.Context, c Conn) error {
			_, addErr = c.MemberAddAsLearner(ctx, []string{nm.PeerURL})
			return nil
		}); err != nil {
			addErr = err
		}
		if isErr(addErr, rpctypes.ErrGRPCTooManyLearners) {
			return false, "", fmt.Errorf("add learner: %w (another learner joined the cluster meanwhile)", addErr)
		}
		// The member list decides: an add whose reply was lost may have been
		// applied. etcd refuses changes for a few seconds after one
		// ("unhealthy cluster") until every voter has been connected for a while.
		members, err = r.list(ctx)
		if err == nil {
			m = byPeerURL(members, nm.PeerURL)
		}
		if m == nil && r.sleep(ctx) != nil {
			return false, "", fmt.Errorf("add learner within %s: %v", r.o.StepTimeout, errors.Join(addErr, err))
		}
	}
	nm.ID = hexID(m.ID)
	if err := r.j.save(r.path); err != nil {
		return false, "", err
	}
	ic, err := initialCluster(members, m.ID, nm.Name)
	if err != nil {
		return false, "", err
	}
	nm.InitialCluster = ic
	if err := r.writeConfig(nm); err != nil {
		return false, "", err
	}
	how := "added as learner " + nm.ID
	if already {
		how = "already a member: " + nm.ID
	}
	return already, fmt.Sprintf("%s; wrote %s and %s", how, nm.ConfigFile, nm.EnvFile), nil
}

// initialCluster is the initial-cluster a joining member must start with:
// every member of the list (etcd compares their peer URLs with its own),
// the new one under its name, as `etcdctl member add` prints it.
func initialCluster(members []Member, id uint64, name string) (string, error) {
	var parts []string
	for _, m := range members {
		n := m.Name
		if m.ID == id {
			n = name
		}
		if n == "" {
			return "", fmt.Errorf("member %x was added but never started: start or remove it first", m.ID)
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ","), nil
}

// conf is the new member's etcd settings.
func (r *runner) conf(nm *NewMember) memberconf.Member {
	c := memberconf.Member{Name: nm.Name, DataDir: nm.DataDir, InitialCluster: nm.InitialCluster, InitialClusterState: "existing"}
	for _, m := range r.o.New {
		if m.Name == nm.Name {
			c.ListenClientURLs, c.AdvertiseClientURLs = strings.Join(m.ListenClientURLs, ","), strings.Join(m.ClientURLs, ",")
			c.ListenPeerURLs, c.InitialAdvertisePeerURLs = strings.Join(m.ListenPeerURLs, ","), strings.Join(m.PeerURLs, ",")
			c.TLS = m.TLS
		}
	}
	if c.AdvertiseClientURLs == "" {
		c.ListenClientURLs, c.AdvertiseClientURLs = nm.ClientURL, nm.ClientURL
		c.ListenPeerURLs, c.InitialAdvertisePeerURLs = nm.PeerURL, nm.PeerURL
	}
	return c
}

func (r *runner) writeConfig(nm *NewMember) error {
	c := r.conf(nm)
	header := []string{
		fmt.Sprintf("etcd member %s joining cluster %s, written by etcdops migrate.", nm.Name, r.j.ClusterID),
		"Start it with: " + startCommand(nm),
		"The initial-* settings are read on the first start only.",
	}
	for path, data := range map[string][]byte{nm.ConfigFile: c.YAML(header...), nm.EnvFile: c.EnvFile(header[0], header[2])} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

func startCommand(nm *NewMember) string {
	return "etcdops serve --config-file " + memberconf.ShellQuote(nm.ConfigFile)
}

func (r *runner) vars(nm *NewMember) Vars {
	return Vars{Name: nm.Name, Config: nm.ConfigFile, Env: nm.EnvFile, DataDir: nm.DataDir, PeerURL: nm.PeerURL, ClientURL: nm.ClientURL}
}

// start runs the start command (or asks the operator to) and waits until
// the member has joined: the member list shows its name.
func (r *runner) start(ctx context.Context, nm *NewMember) (bool, string, error) {
	id := parseID(nm.ID)
	members, err := r.list(ctx)
	if err != nil {
		return false, "", err
	}
	m := byID(members, id)
	if m == nil {
		return false, "", fmt.Errorf("member %s (%s) is no longer in the cluster: rerun to add it again", nm.Name, nm.ID)
	}
	if m.Name != "" {
		return true, "already started", nil
	}
	how := "started by the start command"
	if r.o.StartCmd != "" {
		cmd := Expand(r.o.StartCmd, r.vars(nm))
		if err := runShell(ctx, cmd); err != nil {
			return false, "", r.giveUp(ctx, nm, Start, "the start command failed: "+err.Error())
		}
	} else {
		how = "started by the operator"
		if r.o.Operator != nil {
			fmt.Fprintf(r.o.Operator, "start member %s now, on its host, within %s:\n  %s\n", nm.Name, r.o.StepTimeout, startCommand(nm))
		}
	}
	var seen string
	for {
		members, err := r.list(ctx)
		if err == nil {
			if m := byID(members, id); m != nil && m.Name != "" {
				return false, how, nil
			}
			seen = "the member list still shows it not started"
		} else if ctx.Err() == nil {
			seen = err.Error()
		}
		if r.sleep(ctx) != nil {
			return false, "", r.giveUp(ctx, nm, Start, fmt.Sprintf("not started within %s: %s", r.o.StepTimeout, seen))
		}
	}
}

// waitCaughtUp waits until the member's applied index, read from the
// member itself, is within MaxLag of the leader's. One connection to the
// member serves every poll: it comes up as soon as the member serves
// (after it has received the database), while each poll waits at most
// about a second for it, to show the progress.
func (r *runner) waitCaughtUp(ctx context.Context, nm *NewMember) (bool, string, error) {
	var seen string
	defer r.progressDone()
	self, err := r.dial([]string{nm.ClientURL})
	if err != nil {
		return false, "", err
	}
	defer self.Close()
	for {
		mine, leader, err := r.appliedIndexes(ctx, self, nm.ClientURL)
		switch {
		case err == nil && leader <= mine+r.o.MaxLag:
			return false, fmt.Sprintf("caught up: applied index %d, the leader's %d", mine, leader), nil
		case err == nil:
			seen = fmt.Sprintf("applied index %d, the leader's %d (%d behind, more than %d)", mine, leader, leader-mine, r.o.MaxLag)
			r.progress("catching up %s: applied index %d of the leader's %d (%d behind)", nm.Name, mine, leader, leader-mine)
		case ctx.Err() == nil:
			seen = err.Error()
		}
		if r.sleep(ctx) != nil {
			return false, "", r.giveUp(ctx, nm, WaitCaughtUp, fmt.Sprintf("not caught up within %s: %s", r.o.StepTimeout, seen))
		}
	}
}

// appliedIndexes reads the applied index of the member at endpoint through
// its connection self, and the leader's, each from its own status.
func (r *runner) appliedIndexes(ctx context.Context, self Conn, endpoint string) (mine, leader uint64, err error) {
	members, err := r.list(ctx)
	if err != nil {
		return 0, 0, err
	}
	sctx, cancel := context.WithTimeout(ctx, min(r.o.Connection.Timeout, max(time.Second, r.o.Poll)))
	st, err := self.Status(sctx, endpoint)
	cancel()
	if err != nil {
		return 0, 0, fmt.Errorf("status of %s: %w", endpoint, err)
	}
	mine = st.RaftAppliedIndex
	lm := byID(members, st.Leader)
	if lm == nil || len(lm.ClientURLs) == 0 {
		return 0, 0, fmt.Errorf("leader %x unknown", st.Leader)
	}
	err = r.request(ctx, lm.ClientURLs, func(ctx context.Context, c Conn) error {
		lst, err := c.Status(ctx, lm.ClientURLs[0])
		if err != nil {
			return fmt.Errorf("status of leader %s: %w", lm.Name, err)
		}
		leader = lst.RaftAppliedIndex
		return nil
	})
	return mine, leader, err
}

func (r *runner) progress(format string, args ...any) {
	if r.o.Progress != nil {
		fmt.Fprintf(r.o.Progress, "\r\033[K"+format, args...)
	}
}

func (r *runner) progressDone() {
	if r.o.Progress != nil {
		fmt.Fprint(r.o.Progress, "\r\033[K")
	}
}

// promote promotes the learner, retrying while etcd finds it not yet in
// sync; a member that is no learner any more counts as promoted.
func (r *runner) promote(ctx context.Context, nm *NewMember) (bool, string, error) {
	id := parseID(nm.ID)
	var seen string
	for attempt := 0; ; attempt++ {
		members, err := r.list(ctx)
		if err == nil {
			m := byID(members, id)
			switch {
			case m == nil:
				return false, "", fmt.Errorf("member %s (%s) is no longer in the cluster", nm.Name, nm.ID)
			case !m.IsLearner:
				return attempt == 0, "a voting member", nil
			}
			var promoteErr error
			if err := r.request(ctx, r.endpoints, func(ctx context.Context, c Conn) error {
				_, promoteErr = c.MemberPromote(ctx, id)
				return nil
			}); err != nil {
				promoteErr = err
			}
			switch {
			case promoteErr == nil, isErr(promoteErr, rpctypes.ErrGRPCMemberNotLearner):
				return false, "promoted to a voting member", nil
			case isErr(promoteErr, rpctypes.ErrGRPCLearnerNotReady):
				seen = "etcd: not yet in sync with the leader"
			default:
				seen = promoteErr.Error() // the member list decides on the next round
			}
		} else if ctx.Err() == nil {
			seen = err.Error()
		}
		if r.sleep(ctx) != nil {
			return false, "", r.giveUp(ctx, nm, Promote, fmt.Sprintf("not promoted within %s: %s", r.o.StepTimeout, seen))
		}
	}
}

// giveUp removes a new member that did not start, catch up or get promoted
// in time, unless the run was interrupted: then a rerun carries on.
func (r *runner) giveUp(ctx context.Context, nm *NewMember, a Action, seen string) error {
	if errors.Is(context.Cause(ctx), context.Canceled) {
		return ctx.Err()
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.StepTimeout)
	defer cancel()
	err := r.removeLearner(rctx, parseID(nm.ID))
	if err != nil {
		r.lg.Error("remove the new member again", zap.String("member", nm.Name), zap.Error(err))
	}
	return &NewMemberError{Member: nm.Name, Action: a, Seen: seen, RemovedAgain: err == nil}
}

// removeLearner removes member id if it is still a learner.
func (r *runner) removeLearner(ctx context.Context, id uint64) error {
	for {
		members, err := r.list(ctx)
		if err == nil {
			m := byID(members, id)
			if m == nil {
				return nil
			}
			if !m.IsLearner {
				return fmt.Errorf("member %x is a voting member now", id)
			}
			err = r.request(ctx, othersEndpoints(members, id), func(ctx context.Context, c Conn) error {
				_, err := c.MemberRemove(ctx, id)
				return err
			})
			if err == nil || isErr(err, rpctypes.ErrGRPCMemberNotFound) {
				return nil
			}
		}
		if r.sleep(ctx) != nil {
			return fmt.Errorf("remove learner %x: %w", id, err)
		}
	}
}

// othersEndpoints are the client URLs of the members other than id.
func othersEndpoints(members []Member, id uint64) []string {
	var eps []string
	for _, m := range members {
		if m.ID != id && !m.IsLearner {
			eps = append(eps, m.ClientURLs...)
		}
	}
	return eps
}

// moveLeader moves leadership away from an old member that leads, to the
// most caught up of the step's candidates.
func (r *runner) moveLeader(ctx context.Context, s Step) (bool, string, error) {
	old := r.j.oldMember(s.Member)
	if old == nil {
		return false, "", fmt.Errorf("member %s is not in the journal", s.Member)
	}
	members, err := r.list(ctx)
	if err != nil {
		return false, "", err
	}
	return r.moveLeaderFrom(ctx, members, parseID(old.ID), s.To)
}

// moveLeaderFrom moves leadership from member id, if it leads, to the most
// caught up voter among names (any other voter when names is empty).
func (r *runner) moveLeaderFrom(ctx context.Context, members []Member, id uint64, names []string) (bool, string, error) {
	leader, err := r.leader(ctx)
	if err != nil {
		return false, "", err
	}
	if leader != id {
		return true, "not the leader", nil
	}
	best, err := r.mostCaughtUp(ctx, members, id, names)
	if err == nil && best == nil && len(names) > 0 {
		best, err = r.mostCaughtUp(ctx, members, id, nil)
	}
	if err != nil {
		return false, "", err
	}
	if best == nil {
		return false, "", errors.New("no other voting member answers to take over leadership")
	}
	self := byID(members, id)
	err = r.request(ctx, self.ClientURLs, func(ctx context.Context, c Conn) error {
		_, err := c.MoveLeader(ctx, best.ID)
		return err
	})
	if err != nil && !isErr(err, rpctypes.ErrGRPCNotLeader) {
		return false, "", fmt.Errorf("move leadership to %s: %w", best.Name, err)
	}
	for {
		if leader, err := r.leader(ctx); err == nil && leader != id {
			return false, fmt.Sprintf("leadership moved to %s", nameOf(members, leader)), nil
		}
		if r.sleep(ctx) != nil {
			return false, "", fmt.Errorf("move leadership to %s: still the leader after %s", best.Name, r.o.StepTimeout)
		}
	}
}

// mostCaughtUp is the voter other than id, among names (all when empty),
// that applied the most, or nil when none answers.
func (r *runner) mostCaughtUp(ctx context.Context, members []Member, id uint64, names []string) (*Member, error) {
	var best *Member
	var bestIndex uint64
	for i, m := range members {
		if m.ID == id || m.IsLearner || len(m.ClientURLs) == 0 || (len(names) > 0 && !slices.Contains(names, m.Name)) {
			continue
		}
		err := r.request(ctx, r.endpoints, func(ctx context.Context, c Conn) error {
			st, err := c.Status(ctx, m.ClientURLs[0])
			if err == nil && (best == nil || st.RaftAppliedIndex > bestIndex) {
				best, bestIndex = &members[i], st.RaftAppliedIndex
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return best, nil
}

// leader is the leader's member ID as a member's status says.
func (r *runner) leader(ctx context.Context) (uint64, error) {
	var last error
	for _, ep := range r.endpoints {
		if slices.Contains(r.stopped, ep) {
			continue
		}
		var leader uint64
		err := r.request(ctx, []string{ep}, func(ctx context.Context, c Conn) error {
			st, err := c.Status(ctx, ep)
			if err == nil {
				leader = st.Leader
			}
			return err
		})
		if err == nil && leader != 0 {
			return leader, nil
		}
		if last = err; ctx.Err() != nil {
			break
		}
	}
	if last == nil {
		return 0, errors.New("no member knows the leader")
	}
	return 0, fmt.Errorf("no member knows the leader: %w", last)
}

func nameOf(members []Member, id uint64) string {
	if m := byID(members, id); m != nil && m.Name != "" {
		return m.Name
	}
	return hexID(id)
}

// remove removes an old member through another member's endpoint, after
// moving leadership away if it leads; "member not found" counts as done.
func (r *runner) remove(ctx context.Context, name string) (bool, string, error) {
	old := r.j.oldMember(name)
	if old == nil {
		return false, "", fmt.Errorf("member %s is not in the journal", name)
	}
	id := parseID(old.ID)
	var seen string
	for attempt := 0; ; attempt++ {
		members, err := r.list(ctx)
		if err == nil {
			if byID(members, id) == nil {
				return attempt == 0, "removed", nil
			}
			if _, _, err := r.moveLeaderFrom(ctx, members, id, r.addedNames()); err != nil {
				return false, "", err
			}
			err = r.request(ctx, othersEndpoints(members, id), func(ctx context.Context, c Conn) error {
				_, err := c.MemberRemove(ctx, id)
				return err
			})
			switch {
			case err == nil, isErr(err, rpctypes.ErrGRPCMemberNotFound):
				return false, "removed", nil
			default:
				seen = err.Error() // not enough started members, unhealthy, a lost reply: the member list decides
			}
		} else if ctx.Err() == nil {
			seen = err.Error()
		}
		if r.sleep(ctx) != nil {
			return false, "", fmt.Errorf("not removed within %s: %s", r.o.StepTimeout, seen)
		}
	}
}

// addedNames are the new members that vote by now, as leadership candidates.
func (r *runner) addedNames() []string {
	var out []string
	for _, nm := range r.j.New {
		if nm.ID != "" {
			out = append(out, nm.Name)
		}
	}
	return out
}

// stop runs the stop command for an old member: after its removal, or,
// when the plan drains it, before: then it must still be a member, not
// lead, and stop answering before the step is done.
func (r *runner) stop(ctx context.Context, name string) (bool, string, error) {
	if r.o.StopCmd == "" {
		return false, "no stop command: a removed member stops by itself", nil
	}
	old := r.j.oldMember(name)
	drain := r.j.Plan.Drains(name)
	if drain {
		if old == nil {
			return false, "", fmt.Errorf("member %s is not in the journal", name)
		}
		members, err := r.list(ctx)
		if err != nil {
			return false, "", err
		}
		id := parseID(old.ID)
		if byID(members, id) == nil {
			return true, "already removed", nil
		}
		if r.down(ctx, old.ClientURLs) {
			return true, "already stopped", nil
		}
		// Leadership may have come back to it since the plan moved it.
		if _, _, err := r.moveLeaderFrom(ctx, members, id, r.addedNames()); err != nil {
			return false, "", err
		}
	}
	v := Vars{Name: name}
	if old != nil && len(old.PeerURLs) > 0 {
		v.PeerURL = old.PeerURLs[0]
	}
	if old != nil && len(old.ClientURLs) > 0 {
		v.ClientURL = old.ClientURLs[0]
	}
	if r.o.Files != nil {
		v.DataDir, v.Config, v.Env = r.o.Files(name)
	}
	if err := runShell(ctx, Expand(r.o.StopCmd, v)); err != nil {
		return false, "", fmt.Errorf("stop command: %w", err)
	}
	if !drain {
		return false, "stop command ran", nil
	}
	for !r.down(ctx, old.ClientURLs) {
		if r.sleep(ctx) != nil {
			return false, "", fmt.Errorf("member %s still answers on %s %s after the stop command", name, strings.Join(old.ClientURLs, ","), r.o.StepTimeout)
		}
	}
	return false, "stopped, its clients moved to other members", nil
}

// down tells whether none of a member's client URLs accepts a connection
// within a second: a stopped member has closed its listeners. (A status
// request would wait for a connection to a stopped member until its
// deadline.)
func (r *runner) down(ctx context.Context, clientURLs []string) bool {
	var d net.Dialer
	for _, raw := range clientURLs {
		network, addr := "tcp", raw
		if u, err := url.Parse(raw); err == nil && u.Host != "" {
			addr = u.Host
			if u.Scheme == "unix" || u.Scheme == "unixs" {
				network, addr = "unix", u.Host+u.Path
			}
		}
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, network, addr)
		cancel()
		if err == nil {
			c.Close()
			return false
		}
		if ctx.Err() != nil {
			return false
		}
	}
	return true
}
