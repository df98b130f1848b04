package migrate

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/etcdops/etcdops/internal/etcdclient"
	"github.com/etcdops/etcdops/internal/memberconf"
)

// start runs the start command (or asks the operator to) and waits until
// the member has joined: the member list shows its name. The data dir that
// an attempt removed again left goes aside first (see staleDataDir).
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
	how, err := r.clearStaleDataDir(nm)
	if err != nil {
		return false, "", err
	}
	if r.o.StartCmd != "" {
		how = "started by the start command" + how
		if err := runShell(ctx, Expand(r.o.StartCmd, r.vars(nm))); err != nil {
			return false, "", r.giveUp(ctx, nm, Start, "the start command failed: "+err.Error())
		}
	} else {
		how = "started by the operator" + how
		r.askToStart(nm)
	}
	w := r.newWait(fmt.Sprintf("member %s to start", nm.Name))
	defer w.done()
	var seen string
	for {
		members, err := r.list(ctx)
		if err == nil {
			if m := byID(members, id); m != nil && m.Name != "" {
				return false, how, r.startedFresh(nm)
			}
			seen = "the member list still shows it not started"
		} else if ctx.Err() == nil {
			seen = err.Error()
		}
		if w.sleep(ctx, seen) != nil {
			return false, "", r.giveUp(ctx, nm, Start, fmt.Sprintf("not started within %s: %s", r.o.StepTimeout, seen))
		}
	}
}

// askToStart tells the operator how to start the member, on its host.
func (r *runner) askToStart(nm *NewMember) {
	if r.o.Operator == nil {
		return
	}
	fmt.Fprintf(r.o.Operator, "start member %s now, on its host, within the step timeout (%s):\n", nm.Name, r.o.StepTimeout)
	fmt.Fprintf(r.o.Operator, "  copy %s (or %s, for systemd) there, to the same path, unless this is its host\n", nm.ConfigFile, nm.EnvFile)
	if nm.StaleDataDir != "" {
		fmt.Fprintf(r.o.Operator, "  move its data dir %s aside there: it holds the WAL of the attempt that was removed again\n", nm.StaleDataDir)
	}
	fmt.Fprintf(r.o.Operator, "  then run there: %s\n", memberconf.ServeCommand(nm.ConfigFile))
}

// waitCaughtUp waits until the member's applied index, read from the
// member itself, is within MaxLag of the leader's. One connection to the
// member serves every poll: it comes up as soon as the member serves
// (after it has received the database), while each poll waits at most
// about a second for it, to show the progress.
func (r *runner) waitCaughtUp(ctx context.Context, nm *NewMember) (bool, string, error) {
	var seen string
	w := r.newWait(fmt.Sprintf("member %s to catch up", nm.Name))
	defer w.done()
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
		case ctx.Err() == nil:
			seen = err.Error()
		}
		if w.sleep(ctx, seen) != nil {
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
	sctx, cancel := context.WithTimeout(ctx, min(r.o.Connection.Timeout, max(time.Second, r.o.poll)))
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

// promote promotes the learner, retrying while etcd finds it not yet in
// sync; a member that is no learner any more counts as promoted.
func (r *runner) promote(ctx context.Context, nm *NewMember) (bool, string, error) {
	id := parseID(nm.ID)
	w := r.newWait(fmt.Sprintf("the promotion of member %s to be accepted", nm.Name))
	defer w.done()
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
			case promoteErr == nil, etcdclient.IsRPCError(promoteErr, rpctypes.ErrGRPCMemberNotLearner):
				return false, "promoted to a voting member", nil
			case etcdclient.IsRPCError(promoteErr, rpctypes.ErrGRPCLearnerNotReady):
				seen = "etcd: not yet in sync with the leader"
			default:
				seen = promoteErr.Error() // the member list decides on the next round
			}
		} else if ctx.Err() == nil {
			seen = err.Error()
		}
		if w.sleep(ctx, seen) != nil {
			return false, "", r.giveUp(ctx, nm, Promote, fmt.Sprintf("not promoted within %s: %s", r.o.StepTimeout, seen))
		}
	}
}
