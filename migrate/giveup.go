package migrate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"time"

	"go.uber.org/zap"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/etcdops/etcdops/internal/etcdclient"
	"github.com/etcdops/etcdops/restore"
)

// NewMemberError says that a new member did not start, catch up or get
// promoted within the step's time, and was removed again.
type NewMemberError struct {
	Member string
	Action Action
	Seen   string
	// RemovedAgain is false when removing it failed too.
	RemovedAgain bool
	// DataDir is the member's data dir, which may hold the WAL of the
	// member removed again: etcd refuses to start on it. OnThisHost says
	// that a rerun moves it aside; otherwise it must be cleared on the
	// member's host (the start command gets it as {stale-data-dir}).
	DataDir    string
	OnThisHost bool
}

func (e *NewMemberError) Error() string {
	s := fmt.Sprintf("new member %s: %s did not complete: %s", e.Member, e.Action, e.Seen)
	if !e.RemovedAgain {
		return s + "; removing it again failed too: remove it with etcdops migrate abort"
	}
	s += "; it was removed again and the cluster is as before it was added"
	if e.OnThisHost {
		return s + "; a rerun moves its data dir " + e.DataDir + " aside before it starts the member again"
	}
	return s + "; before a rerun, move its data dir " + e.DataDir + " aside on its host (a start command gets it as {stale-data-dir})"
}

// giveUp removes a new member that did not start, catch up or get promoted
// in time, unless the run was interrupted: then a rerun carries on. Its
// data dir is stale then, and the journal says so.
func (r *runner) giveUp(ctx context.Context, nm *NewMember, a Action, seen string) error {
	if errors.Is(context.Cause(ctx), context.Canceled) {
		return ctx.Err()
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.StepTimeout)
	defer cancel()
	err := r.removeLearner(rctx, parseID(nm.ID))
	if err != nil {
		r.lg.Error("remove the new member again", zap.String("member", nm.Name), zap.Error(err))
		return &NewMemberError{Member: nm.Name, Action: a, Seen: seen}
	}
	nm.StaleDataDir = nm.DataDir
	return &NewMemberError{Member: nm.Name, Action: a, Seen: seen, RemovedAgain: true, DataDir: nm.DataDir, OnThisHost: onThisHost(nm.PeerURL)}
}

// clearStaleDataDir moves the data dir of an attempt removed again aside,
// as <dir>.old-<UTC time>, when it is on this host. It returns what it did,
// for the step's detail.
func (r *runner) clearStaleDataDir(nm *NewMember) (string, error) {
	if nm.StaleDataDir == "" || !onThisHost(nm.PeerURL) {
		return "", nil
	}
	aside, err := restore.MoveAside(nm.StaleDataDir, time.Now())
	if err != nil {
		return "", fmt.Errorf("move the data dir of the attempt removed again aside: %w", err)
	}
	stale := nm.StaleDataDir
	nm.StaleDataDir = ""
	if err := r.j.save(r.path); err != nil {
		return "", err
	}
	if aside == "" {
		return "", nil
	}
	r.lg.Info("moved the data dir of the attempt removed again aside", zap.String("member", nm.Name), zap.String("data-dir", stale), zap.String("to", aside))
	return "; its data dir of the attempt removed again moved aside to " + aside, nil
}

// startedFresh records that the member started on a data dir of its own:
// the one of an attempt removed again is gone.
func (r *runner) startedFresh(nm *NewMember) error {
	if nm.StaleDataDir == "" {
		return nil
	}
	nm.StaleDataDir = ""
	return r.j.save(r.path)
}

// onThisHost tells whether the member of peer URL u runs on this host: its
// host is a loopback address or name, or an address of an interface here.
func onThisHost(u string) bool {
	pu, err := url.Parse(u)
	if err != nil {
		return false
	}
	host := pu.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	return slices.ContainsFunc(addrs, func(a net.Addr) bool {
		n, ok := a.(*net.IPNet)
		return ok && n.IP.Equal(ip)
	})
}

// removeLearner removes member id if it is still a learner.
func (r *runner) removeLearner(ctx context.Context, id uint64) error {
	w := r.newWait(fmt.Sprintf("learner %x to be removed", id))
	defer w.done()
	for {
		var seen string
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
		if err != nil {
			seen = err.Error()
		}
		if w.sleep(ctx, seen) != nil {
			return fmt.Errorf("remove learner %x: %w", id, err)
		}
	}
}
