package pitr

import (
	"context"
	"fmt"
	"iter"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/internal/etcdtest"
)

// workload writes a seeded mix of what a log must carry: puts of new and
// existing keys (small values and values past a bolt page), single and
// range deletes, multi-key transactions, keys put on leases, moved between
// leases and off them, leases revoked, and leases that expire.
type workload struct {
	t   testing.TB
	cli *clientv3.Client
	rnd *rand.Rand
	// leases are the live leases the workload granted; ttls every lease
	// it granted, with its TTL.
	leases []clientv3.LeaseID
	ttls   map[int64]int64
}

func newWorkload(t testing.TB, cli *clientv3.Client, seed uint64) *workload {
	return &workload{t: t, cli: cli, rnd: rand.New(rand.NewPCG(seed, seed)), ttls: map[int64]int64{}}
}

func (w *workload) key() string { return fmt.Sprintf("/k/%02d/%02d", w.rnd.IntN(4), w.rnd.IntN(12)) }

func (w *workload) value() string {
	if w.rnd.IntN(40) == 0 {
		return strings.Repeat(fmt.Sprint(w.rnd.IntN(10)), 5000+w.rnd.IntN(20000))
	}
	return fmt.Sprintf("v%d-%s", w.rnd.Uint32(), strings.Repeat("x", w.rnd.IntN(200)))
}

func (w *workload) grant(ttl int64) clientv3.LeaseID {
	resp, err := w.cli.Grant(context.Background(), ttl)
	if err != nil {
		w.t.Fatal(err)
	}
	w.leases = append(w.leases, resp.ID)
	w.ttls[int64(resp.ID)] = ttl
	return resp.ID
}

// run does n operations.
func (w *workload) run(n int) {
	w.t.Helper()
	ctx := context.Background()
	for range n {
		var err error
		switch op := w.rnd.IntN(100); {
		case op < 40:
			_, err = w.cli.Put(ctx, w.key(), w.value())
		case op < 50:
			_, err = w.cli.Delete(ctx, w.key())
		case op < 53:
			_, err = w.cli.Delete(ctx, fmt.Sprintf("/k/%02d/", w.rnd.IntN(4)), clientv3.WithPrefix())
		case op < 68:
			a, b, c := w.key(), w.key(), w.key()
			if a == b || b == c || a == c {
				continue
			}
			_, err = w.cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(a), ">", 0)).
				Then(clientv3.OpPut(a, w.value()), clientv3.OpPut(b, w.value()), clientv3.OpDelete(c)).
				Else(clientv3.OpPut(b, w.value()), clientv3.OpPut(c, w.value())).Commit()
		case op < 85:
			if len(w.leases) == 0 || w.rnd.IntN(8) == 0 {
				w.grant(int64(60 + w.rnd.IntN(600)))
			}
			_, err = w.cli.Put(ctx, w.key(), w.value(), clientv3.WithLease(w.leases[w.rnd.IntN(len(w.leases))]))
		case op < 88:
			if len(w.leases) > 1 {
				i := w.rnd.IntN(len(w.leases))
				_, err = w.cli.Revoke(ctx, w.leases[i])
				w.leases = append(w.leases[:i], w.leases[i+1:]...)
			}
		case op < 90:
			// A new value that keeps the key's lease, or a new lease that
			// keeps the value (both refused for a key that does not exist).
			if w.rnd.IntN(2) == 0 || len(w.leases) == 0 {
				_, err = w.cli.Put(ctx, w.key(), w.value(), clientv3.WithIgnoreLease())
			} else {
				_, err = w.cli.Put(ctx, w.key(), "", clientv3.WithIgnoreValue(), clientv3.WithLease(w.leases[w.rnd.IntN(len(w.leases))]))
			}
			if err != nil && strings.Contains(err.Error(), "key not found") {
				err = nil
			}
		default:
			_, err = w.cli.Put(ctx, w.key(), w.value())
		}
		if err != nil {
			w.t.Fatal(err)
		}
	}
}

// expire puts keys on a lease of the shortest TTL and waits until etcd
// has revoked it (the keys' deletes are one revision of the log).
func (w *workload) expire(keys int) {
	w.t.Helper()
	ctx := context.Background()
	id := w.grant(1)
	w.leases = w.leases[:len(w.leases)-1]
	for i := range keys {
		if _, err := w.cli.Put(ctx, fmt.Sprintf("/short/%d", i), w.value(), clientv3.WithLease(id)); err != nil {
			w.t.Fatal(err)
		}
	}
	etcdtest.Eventually(w.t, 30*time.Second, func() error {
		resp, err := w.cli.Get(ctx, "/short/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil && resp.Count != 0 {
			err = fmt.Errorf("%d keys on lease %x left", resp.Count, id)
		}
		return err
	})
}

// rev returns the cluster's revision.
func (w *workload) rev() int64 {
	resp, err := w.cli.Get(context.Background(), "/")
	if err != nil {
		w.t.Fatal(err)
	}
	return resp.Header.Revision
}

// watchLog reads the revisions from through to off a watch, as a log
// streamer records them: events grouped by revision, each lease with its
// TTL the first time it appears.
func watchLog(t testing.TB, cli *clientv3.Client, from, to int64, ttls map[int64]int64) []Revision {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seen := map[int64]bool{}
	var revs []Revision
	for resp := range cli.Watch(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(from)) {
		if err := resp.Err(); err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.Events {
			rev := ev.Kv.ModRevision
			if len(revs) == 0 || revs[len(revs)-1].Rev != rev {
				revs = append(revs, Revision{Rev: rev, Received: time.Now()})
			}
			r := &revs[len(revs)-1]
			r.Events = append(r.Events, (*mvccpb.Event)(ev))
			if id := ev.Kv.Lease; id != 0 && !seen[id] {
				seen[id] = true
				ttl, ok := ttls[id]
				if !ok {
					t.Fatalf("lease %x not granted by the workload", id)
				}
				r.Leases = append(r.Leases, Lease{ID: id, TTL: ttl})
			}
		}
		if len(revs) > 0 && revs[len(revs)-1].Rev >= to {
			return revs
		}
	}
	t.Fatalf("watch ended before revision %d", to)
	return nil
}

// seq yields the revisions of slices, one after the other.
func seq(parts ...[]Revision) iter.Seq2[Revision, error] {
	return func(yield func(Revision, error) bool) {
		for _, p := range parts {
			for _, r := range p {
				if !yield(r, nil) {
					return
				}
			}
		}
	}
}
