package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/etcdops/etcdops/internal/etcdclient"
)

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
			if err == nil || etcdclient.IsRPCError(err, rpctypes.ErrGRPCMemberNotFound) {
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
