// Package pitrtest writes what a point-in-time log must carry to real
// members and reads it back off a watch, for the tests of pitr and its users.
package pitrtest

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
	"go.uber.org/zap"

	"github.com/etcdops/etcdops/backup"

	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/pitr"
)

// Workload writes a seeded mix of what a log must carry: puts of new and
// existing keys (small values and values past a bolt page), single and
// range deletes, multi-key transactions, keys put on leases, moved between
// leases and off them, leases revoked, and leases that expire.
type Workload struct {
	t      testing.TB
	cli    *clientv3.Client
	rnd    *rand.Rand
	leases []clientv3.LeaseID
	// TTLs are the leases the workload granted, with their TTLs.
	TTLs map[int64]int64
}

// NewWorkload returns a workload of seed writing through cli.
func NewWorkload(t testing.TB, cli *clientv3.Client, seed uint64) *Workload {
	return &Workload{t: t, cli: cli, rnd: rand.New(rand.NewPCG(seed, seed)), TTLs: map[int64]int64{}}
}

func (w *Workload) key() string { return fmt.Sprintf("/k/%02d/%02d", w.rnd.IntN(4), w.rnd.IntN(12)) }

func (w *Workload) value() string {
	if w.rnd.IntN(40) == 0 {
		return strings.Repeat(fmt.Sprint(w.rnd.IntN(10)), 5000+w.rnd.IntN(20000))
	}
	return fmt.Sprintf("v%d-%s", w.rnd.Uint32(), strings.Repeat("x", w.rnd.IntN(200)))
}

func (w *Workload) grant(ctx context.Context, ttl int64) (clientv3.LeaseID, error) {
	resp, err := w.cli.Grant(ctx, ttl)
	if err != nil {
		return 0, err
	}
	w.leases = append(w.leases, resp.ID)
	w.TTLs[int64(resp.ID)] = ttl
	return resp.ID, nil
}

// Run does n operations.
func (w *Workload) Run(n int) {
	w.t.Helper()
	for range n {
		if err := w.step(context.Background()); err != nil {
			w.t.Fatal(err)
		}
	}
}

// step does one operation of the mix.
func (w *Workload) step(ctx context.Context) error {
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
			return nil
		}
		_, err = w.cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(a), ">", 0)).
			Then(clientv3.OpPut(a, w.value()), clientv3.OpPut(b, w.value()), clientv3.OpDelete(c)).
			Else(clientv3.OpPut(b, w.value()), clientv3.OpPut(c, w.value())).Commit()
	case op < 85:
		if len(w.leases) == 0 || w.rnd.IntN(8) == 0 {
			if _, err := w.grant(ctx, int64(60+w.rnd.IntN(600))); err != nil {
				return err
			}
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
	return err
}

// expiring puts one to three keys of this workload's own below /short/ on
// a new lease of 1 to 3 seconds and leaves it to expire.
func (w *Workload) expiring(ctx context.Context, name string) error {
	id, err := w.grant(ctx, int64(1+w.rnd.IntN(3)))
	if err != nil {
		return err
	}
	w.leases = w.leases[:len(w.leases)-1]
	for i := range 1 + w.rnd.IntN(3) {
		if _, err := w.cli.Put(ctx, fmt.Sprintf("/short/%s/%d", name, i), w.value(), clientv3.WithLease(id)); err != nil {
			return err
		}
	}
	return nil
}

// Expire puts keys on a lease of the shortest TTL and waits until etcd
// has revoked it (the keys' deletes are one revision of the log).
func (w *Workload) Expire(keys int) {
	w.t.Helper()
	ctx := context.Background()
	id, err := w.grant(ctx, 1)
	if err != nil {
		w.t.Fatal(err)
	}
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

// Rev returns the cluster's revision.
func (w *Workload) Rev() int64 {
	resp, err := w.cli.Get(context.Background(), "/")
	if err != nil {
		w.t.Fatal(err)
	}
	return resp.Header.Revision
}

// WatchLog reads the revisions from through to off a watch, as a log
// streamer records them: events grouped by revision, each lease with its
// TTL the first time it appears.
func WatchLog(t testing.TB, cli *clientv3.Client, from, to int64, ttls map[int64]int64) []pitr.Revision {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seen := map[int64]bool{}
	var revs []pitr.Revision
	for resp := range cli.Watch(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(from)) {
		if err := resp.Err(); err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.Events {
			rev := ev.Kv.ModRevision
			if len(revs) == 0 || revs[len(revs)-1].Rev != rev {
				revs = append(revs, pitr.Revision{Rev: rev, Received: time.Now()})
			}
			r := &revs[len(revs)-1]
			r.Events = append(r.Events, (*mvccpb.Event)(ev))
			if id := ev.Kv.Lease; id != 0 && !seen[id] {
				seen[id] = true
				ttl, ok := ttls[id]
				if !ok {
					t.Fatalf("lease %x not granted by the workload", id)
				}
				r.Leases = append(r.Leases, pitr.Lease{ID: id, TTL: ttl})
			}
		}
		if len(revs) > 0 && revs[len(revs)-1].Rev >= to {
			return revs
		}
	}
	t.Fatalf("watch ended before revision %d", to)
	return nil
}

// Seq yields the revisions of slices, one after the other.
func Seq(parts ...[]pitr.Revision) iter.Seq2[pitr.Revision, error] {
	return func(yield func(pitr.Revision, error) bool) {
		for _, p := range parts {
			for _, r := range p {
				if !yield(r, nil) {
					return
				}
			}
		}
	}
}

// FileBucket opens a file:// bucket in a new temporary dir, closed when the
// test ends, and returns the dir (the bucket's URL is "file://"+dir).
func FileBucket(t testing.TB) (string, *backup.Store) {
	t.Helper()
	dir := t.TempDir()
	return dir, OpenBucket(t, "file://"+dir)
}

// OpenBucket opens the bucket at url, closed when the test ends.
func OpenBucket(t testing.TB, url string) *backup.Store {
	t.Helper()
	store, err := backup.OpenStore(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// Save takes a snapshot of the member at endpoints into store under tag,
// named after at (as a schedule names a slot's), and returns its manifest.
func Save(t testing.TB, store *backup.Store, endpoints []string, tag string, at time.Time) *backup.Manifest {
	t.Helper()
	return save(t, store, endpoints, tag, at, nil)
}

// SaveInPast is Save of a snapshot recorded as taken at at too: a test's
// made-up history, hours back, for retention.
func SaveInPast(t testing.TB, store *backup.Store, endpoints []string, tag string, at time.Time) *backup.Manifest {
	t.Helper()
	return save(t, store, endpoints, tag, at, func() time.Time { return at })
}

func save(t testing.TB, store *backup.Store, endpoints []string, tag string, at time.Time, now func() time.Time) *backup.Manifest {
	t.Helper()
	m, err := backup.Save(context.Background(), store, backup.SaveConfig{Endpoints: endpoints, Codec: backup.Codec{Compress: true},
		Tag: tag, CommandTimeout: 5 * time.Second, At: at, Now: now,
		Dial: func(eps ...string) (*clientv3.Client, error) {
			return clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// WriteSegments stores revs as segments of tag, per revisions each, plus
// one that overlaps two of them (as a streamer's takeover leaves), and
// returns their names.
func WriteSegments(t testing.TB, store *backup.Store, tag string, codec backup.Codec, revs []pitr.Revision, per int) []pitr.SegmentName {
	t.Helper()
	var names []pitr.SegmentName
	write := func(part []pitr.Revision) {
		n, _, _, err := pitr.WriteSegment(context.Background(), store, tag, codec, part)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	for i := 0; i < len(revs); i += per {
		write(revs[i:min(i+per, len(revs))])
	}
	if len(revs) > 2*per {
		write(revs[per/2 : per+per/2])
	}
	return names
}
