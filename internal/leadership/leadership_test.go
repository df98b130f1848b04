package leadership

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/internal/etcdtest"
)

// cluster is the leadership view of an in-process cluster, with clients
// that close when the test ends.
func cluster(t *testing.T, c *etcdtest.EmbeddedCluster) *Cluster {
	lc := &Cluster{RequestTimeout: 5 * time.Second, Poll: 50 * time.Millisecond,
		Dial: func(endpoints []string) (Conn, error) {
			return clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 2 * time.Second})
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := c.Client().MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lc.Members = Members(list.Members)
	return lc
}

// TestMove moves leadership to the member preferred, then away from a
// member that does not lead (done already), then to any member when the
// one preferred is down, and finds no candidate when every other is down.
func TestMove(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 3)
	lc := cluster(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader, err := lc.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var to string
	for _, m := range lc.Members {
		if m.ID != leader {
			to = m.Name
		}
	}
	got, moved, err := lc.Move(ctx, leader, []string{to})
	if err != nil || !moved || lc.Name(got) != to {
		t.Fatalf("Move(%s, prefer %s) = %s, %v, %v; want %s, moved", lc.Name(leader), to, lc.Name(got), moved, err, to)
	}
	if now, err := lc.Leader(ctx); err != nil || now != got {
		t.Fatalf("Leader() = %s, %v after the move to %s", lc.Name(now), err, to)
	}

	again, moved, err := lc.Move(ctx, leader, []string{to})
	if err != nil || moved || again != got {
		t.Fatalf("Move from %s, which no longer leads = %s, %v, %v; want %s, not moved", lc.Name(leader), lc.Name(again), moved, err, to)
	}

	// The member preferred is down: the other follower takes over.
	var down, other string
	for _, m := range lc.Members {
		switch {
		case m.ID == leader:
			down = m.Name
			lc.Down = append(lc.Down, m.ClientURLs...)
		case m.ID != got:
			other = m.Name
		}
	}
	best, err := lc.MostCaughtUp(ctx, got, []string{down})
	if err != nil || best != nil {
		t.Fatalf("MostCaughtUp among %s, which is down = %v, %v; want none", down, best, err)
	}
	next, moved, err := lc.Move(ctx, got, []string{down})
	if err != nil || !moved || lc.Name(next) != other {
		t.Fatalf("Move(%s, prefer %s, down) = %s, %v, %v; want %s", to, down, lc.Name(next), moved, err, other)
	}

	for _, m := range lc.Members {
		if m.ID != next {
			lc.Down = append(lc.Down, m.ClientURLs...)
		}
	}
	if _, _, err := lc.Move(ctx, next, nil); !errors.Is(err, ErrNoCandidate) {
		t.Fatalf("Move with every other member down: %v, want ErrNoCandidate", err)
	}
}
