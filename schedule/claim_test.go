package schedule

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/internal/etcdtest"
)

func TestClaimExactlyOnePerSlotAndNoneWithoutQuorum(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 3)
	var claimers []*Claimer
	for i, ep := range c.Endpoints() {
		cli := etcdtest.NewClient(t, ep)
		claimers = append(claimers, &Claimer{KV: cli, Lease: cli, Member: c.Members[i].Spec.Name, TTL: time.Minute, Timeout: 2 * time.Second})
	}
	slot := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	for s := 0; s < 5; s++ {
		at := slot.Add(time.Duration(s) * time.Second)
		var wg sync.WaitGroup
		won := make([]bool, len(claimers))
		for i, cl := range claimers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := cl.Claim(context.Background(), "cluster-x", at)
				if err != nil {
					t.Errorf("claim: %v", err)
				}
				won[i] = ok
			}()
		}
		wg.Wait()
		n := 0
		for _, w := range won {
			if w {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("slot %v: %d members won, want exactly 1", at, n)
		}
		resp, err := claimers[0].KV.Get(context.Background(), ClaimKey("cluster-x", at))
		if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
			t.Fatalf("claim key %s: %v %v", ClaimKey("cluster-x", at), resp, err)
		}
	}
	if got := ClaimKey("cluster-x", slot); got != "/etcdops/backup/slots/cluster-x/2026-11-30_10-00-00" {
		t.Errorf("ClaimKey = %s", got)
	}
	// A defrag slot is claimed apart from the backup slot of the same time
	// and name: its member wins it, and the backup claim stays.
	dc := *claimers[2]
	dc.Prefix = DefragClaimPrefix
	if ok, err := dc.Claim(context.Background(), "cluster-x", slot); !ok || err != nil {
		t.Errorf("defrag claim of a slot whose backup claim is taken: won %v, %v", ok, err)
	}
	resp, err := claimers[0].KV.Get(context.Background(), DefragClaimPrefix+"cluster-x/2026-11-30_10-00-00")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != c.Members[2].Spec.Name {
		t.Errorf("defrag claim key: %v %v", resp, err)
	}

	// The member stops (serve's shutdown) just as it revokes the lease of a
	// claim it lost: Claim still returns, the revoke is bounded.
	lost := slot.Add(time.Hour)
	if ok, err := claimers[1].Claim(context.Background(), "cluster-x", lost); !ok || err != nil {
		t.Fatalf("claim of a fresh slot: %v, %v", ok, err)
	}
	loser := *claimers[0]
	loser.Lease = revokeAfter{Lease: loser.Lease, before: c.Members[0].Stop}
	done := make(chan error, 1)
	go func() {
		ok, err := loser.Claim(context.Background(), "cluster-x", lost)
		if ok {
			err = errors.New("won a slot another member took")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("losing claim: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a losing claim still revokes its lease a minute after its member stopped: an unbounded wait")
	}

	c.Members[2].Stop()
	if ok, err := claimers[1].Claim(context.Background(), "cluster-x", slot.Add(2*time.Hour)); ok || err == nil {
		t.Errorf("a member without quorum claimed a slot: %v, %v", ok, err)
	}
}

// revokeAfter is a lease client that runs before ahead of each revoke.
type revokeAfter struct {
	clientv3.Lease
	before func()
}

func (l revokeAfter) Revoke(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error) {
	l.before()
	return l.Lease.Revoke(ctx, id)
}
