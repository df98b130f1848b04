package pitr_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zaptest"

	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/pitr"
)

// A member that may not run (a learner) never campaigns; once it may, it
// is elected and streams.
func TestRunElectedWaitsUntilEligible(t *testing.T) {
	f := newStreamFixture(t)
	s := &pitr.Streamer{Client: f.cli, Store: f.store, Tag: "t", Snapshot: f.snapshot(), Interval: 200 * time.Millisecond,
		HoldEvery: 300 * time.Millisecond, Logger: zaptest.NewLogger(t)}
	var asked atomic.Int32
	candidates := make(chan int64, 8)
	eligible := func() bool {
		// What the election holds while this member has not run for it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if resp, err := f.cli.Get(ctx, pitr.ElectionPrefix+"t/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err == nil {
			select {
			case candidates <- resp.Count:
			default:
			}
		}
		return asked.Add(1) > 3
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pitr.RunElected(ctx, s, "learner", eligible) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunElected: %v", err)
		}
	})
	for i := range 3 {
		select {
		case n := <-candidates:
			if n != 0 {
				t.Fatalf("look %d, while not eligible: %d candidates in the election, want none", i+1, n)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("eligible was asked %d times in 30s, want 3", i)
		}
	}
	etcdtest.Put(t, f.cli, "after", "eligible")
	waitLogged(t, f.store, currentRevision(t, f.cli))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	resp, err := f.cli.Get(ctx2, pitr.ElectionPrefix+"t/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "learner" {
		t.Fatalf("election once eligible: %v %v, want the member as its one candidate", resp, err)
	}
}
