// Package leadership hands etcd's raft leadership away from a member before
// it goes away or pauses (migrate's removals, defrag), and finds who leads.
package leadership

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/internal/etcdclient"
)

// Conn is what this package needs of a connection to members: a member's
// status, and a leadership transfer, which etcd accepts only from the
// leader. migrate.Conn and *clientv3.Client have it.
type Conn interface {
	// Status asks the member at endpoint, one of the connection's.
	Status(ctx context.Context, endpoint string) (*clientv3.StatusResponse, error)
	// MoveLeader asks the member the connection reaches to hand its
	// leadership to transferee.
	MoveLeader(ctx context.Context, transfereeID uint64) (*clientv3.MoveLeaderResponse, error)
	Close() error
}

// Dialer connects to the given client URLs.
type Dialer func(endpoints []string) (Conn, error)

// Member is one entry of the member list.
type Member struct {
	ID         uint64
	Name       string
	ClientURLs []string
	IsLearner  bool
}

// Members converts a member list, as MemberList returns it.
func Members(list []*etcdserverpb.Member) []Member {
	out := make([]Member, 0, len(list))
	for _, m := range list {
		out = append(out, Member{ID: m.ID, Name: m.Name, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
	}
	return out
}

// ErrNoCandidate says that no other voting member answered to take over
// leadership.
var ErrNoCandidate = errors.New("no other voting member answers to take over leadership")

// Cluster is the members to ask and how.
type Cluster struct {
	Dial Dialer
	// Members is the member list.
	Members []Member
	// Down are client URLs of members known to be stopped: asking them
	// would only wait for the timeout.
	Down []string
	// RequestTimeout bounds each request.
	RequestTimeout time.Duration
	// Poll is how often Move checks whether the leadership moved; 0 means
	// 200ms.
	Poll time.Duration
	// Sleep, when set, waits between Move's checks instead of sleeping
	// Poll, and may show the wait; seen is what the last check found. Its
	// error ends the move.
	Sleep func(ctx context.Context, seen string) error
}

// Leader is the leader's member ID, as the first voting member that knows
// it says.
func (c *Cluster) Leader(ctx context.Context) (uint64, error) {
	var last error
	for _, m := range c.Members {
		for _, ep := range m.ClientURLs {
			if m.IsLearner || slices.Contains(c.Down, ep) {
				continue
			}
			st, err := c.status(ctx, ep)
			if err == nil && st.Leader != 0 {
				return st.Leader, nil
			}
			if last = err; ctx.Err() != nil {
				return 0, fmt.Errorf("no member knows the leader: %w", ctx.Err())
			}
		}
	}
	if last == nil {
		return 0, errors.New("no member knows the leader")
	}
	return 0, fmt.Errorf("no member knows the leader: %w", last)
}

// MostCaughtUp is the voting member other than exclude, among the names
// given (any when none is), that has applied the most; nil when none
// answers.
func (c *Cluster) MostCaughtUp(ctx context.Context, exclude uint64, among []string) (*Member, error) {
	var best *Member
	var bestIndex uint64
	for i, m := range c.Members {
		if m.ID == exclude || m.IsLearner || len(m.ClientURLs) == 0 || slices.Contains(c.Down, m.ClientURLs[0]) ||
			(len(among) > 0 && !slices.Contains(among, m.Name)) {
			continue
		}
		st, err := c.status(ctx, m.ClientURLs[0])
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil && (best == nil || st.RaftAppliedIndex > bestIndex) {
			best, bestIndex = &c.Members[i], st.RaftAppliedIndex
		}
	}
	return best, nil
}

// Move hands leadership away from member from to the most caught-up voting
// member that answers, among prefer when one of those answers (any other
// voter otherwise), and waits until a member reports a leader other than
// from. A from that does not lead is done already: moved is false then.
// newLeader is the leader afterwards. ctx bounds the whole move.
func (c *Cluster) Move(ctx context.Context, from uint64, prefer []string) (newLeader uint64, moved bool, err error) {
	leader, err := c.Leader(ctx)
	if err != nil {
		return 0, false, err
	}
	if leader != from {
		return leader, false, nil
	}
	best, err := c.MostCaughtUp(ctx, from, prefer)
	if err == nil && best == nil && len(prefer) > 0 {
		best, err = c.MostCaughtUp(ctx, from, nil)
	}
	if err != nil {
		return 0, false, err
	}
	if best == nil {
		return 0, false, ErrNoCandidate
	}
	self := c.member(from)
	if self == nil || len(self.ClientURLs) == 0 {
		return 0, false, fmt.Errorf("leader %x is not in the member list", from)
	}
	err = c.request(ctx, self.ClientURLs, func(ctx context.Context, conn Conn) error {
		_, err := conn.MoveLeader(ctx, best.ID)
		return err
	})
	if err != nil && !etcdclient.IsRPCError(err, rpctypes.ErrGRPCNotLeader) {
		return 0, false, fmt.Errorf("move leadership to %s: %w", c.Name(best.ID), err)
	}
	start := time.Now()
	for {
		leader, err := c.Leader(ctx)
		if err == nil && leader != from {
			return leader, true, nil
		}
		seen := c.Name(from) + " still leads"
		if err != nil {
			seen = err.Error()
		}
		if c.sleep(ctx, seen) != nil {
			return 0, false, fmt.Errorf("move leadership to %s: %s after %s", c.Name(best.ID), seen, time.Since(start).Round(time.Second))
		}
	}
}

func (c *Cluster) sleep(ctx context.Context, seen string) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, seen)
	}
	poll := c.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(poll):
		return nil
	}
}

// Name is member id's name, or its ID in hex when it has none.
func (c *Cluster) Name(id uint64) string {
	if m := c.member(id); m != nil && m.Name != "" {
		return m.Name
	}
	return fmt.Sprintf("%x", id)
}

func (c *Cluster) member(id uint64) *Member {
	for i := range c.Members {
		if c.Members[i].ID == id {
			return &c.Members[i]
		}
	}
	return nil
}

func (c *Cluster) status(ctx context.Context, endpoint string) (*clientv3.StatusResponse, error) {
	var st *clientv3.StatusResponse
	err := c.request(ctx, []string{endpoint}, func(ctx context.Context, conn Conn) (err error) {
		st, err = conn.Status(ctx, endpoint)
		return err
	})
	return st, err
}

// request runs f with the request timeout on a connection to endpoints.
func (c *Cluster) request(ctx context.Context, endpoints []string, f func(context.Context, Conn) error) error {
	conn, err := c.Dial(endpoints)
	if err != nil {
		return err
	}
	defer conn.Close()
	if c.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.RequestTimeout)
		defer cancel()
	}
	return f(ctx, conn)
}
