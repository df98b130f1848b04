package schedule

import (
	"context"
	"sync"
	"testing"
	"time"

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

	c.Members[1].Stop()
	c.Members[2].Stop()
	if ok, err := claimers[0].Claim(context.Background(), "cluster-x", slot.Add(time.Hour)); ok || err == nil {
		t.Errorf("a member without quorum claimed a slot: %v, %v", ok, err)
	}
}
