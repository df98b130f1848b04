package pitr_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/pkg/v3/traceutil"
	"go.etcd.io/etcd/server/v3/lease"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.uber.org/zap"

	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/pitrtest"
	"github.com/etcdops/etcdops/pitr"
)

// logFixture is a member with a snapshot at revision S and a log of the
// member's revisions S+1 through T, read off a watch.
type logFixture struct {
	cli  *clientv3.Client
	ep   string
	snap []byte // the snapshot's database, without etcd's trailer
	S, T int64
	log  []pitr.Revision
	ttls map[int64]int64
}

func newLogFixture(t *testing.T) *logFixture {
	c := etcdtest.StartEmbedded(t, 1)
	cli := c.Client()
	w := pitrtest.NewWorkload(t, cli, 15)
	w.Run(300)
	w.Expire(3)
	// As kube-apiserver does: the snapshot's history is compacted.
	if _, err := cli.Compact(context.Background(), w.Rev()-40, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	f := &logFixture{cli: cli, ep: c.Endpoints()[0], ttls: w.TTLs}
	f.S = w.Rev()
	f.snap = snapshotDB(t, cli)
	w.Run(400)
	w.Expire(4)
	w.Run(300)
	f.T = w.Rev()
	f.log = pitrtest.WatchLog(t, cli, f.S+1, f.T, w.TTLs)
	if len(f.log) != int(f.T-f.S) || f.log[0].Rev != f.S+1 || f.log[len(f.log)-1].Rev != f.T {
		t.Fatalf("watch gave %d revisions for %d through %d", len(f.log), f.S+1, f.T)
	}
	return f
}

// snapshotDB takes a snapshot of the member and returns its database.
func snapshotDB(t *testing.T, cli *clientv3.Client) []byte {
	t.Helper()
	b := etcdtest.Snapshot(t, cli)
	if len(b)%512 != 32 {
		t.Fatalf("snapshot of %d bytes: expected a database and etcd's 32-byte trailer", len(b))
	}
	return b[:len(b)-32]
}

// db writes a copy of the snapshot's database.
func (f *logFixture) db(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(path, f.snap, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReplayMatchesTheCluster replays the log onto the snapshot to
// revisions from the snapshot's to the log's end and compares the result
// with the member read at the same revision: etcd's hash of the whole key
// history (keys, values, create and mod revisions, versions, leases and
// tombstones of every revision), every key at the revision field by field,
// and every key's lease with the TTL it was granted.
func TestReplayMatchesTheCluster(t *testing.T) {
	f := newLogFixture(t)
	rnd := rand.New(rand.NewPCG(1, 2))
	targets := []int64{f.S, f.S + 1, f.T}
	for range 5 {
		targets = append(targets, f.S+1+rnd.Int64N(f.T-f.S))
	}
	// The revisions where short leases expired: deletes of several keys.
	for _, r := range f.log {
		if len(r.Events) > 2 && r.Events[0].Type == mvccpb.DELETE && bytes.HasPrefix(r.Events[0].Kv.Key, []byte("/short/")) {
			targets = append(targets, r.Rev-1, r.Rev)
		}
	}
	for _, target := range targets {
		path := f.db(t)
		res, err := pitr.Replay(context.Background(), path, pitrtest.Seq(f.log), target, pitr.ReplayOptions{Logger: zap.NewNop()})
		if err != nil {
			t.Fatalf("replay to %d: %v", target, err)
		}
		if res.From != f.S || res.To != target || res.Revisions != target-f.S {
			t.Fatalf("replay to %d: %+v, expected %d revisions from %d", target, res, target-f.S, f.S)
		}
		f.compare(t, path, target)
	}
	t.Logf("snapshot at %d, log through %d, replayed to %v", f.S, f.T, targets)
}

// compare checks the database at path against the member at revision rev.
func (f *logFixture) compare(t *testing.T, path string, rev int64) {
	t.Helper()
	ctx := context.Background()
	be := backend.NewDefaultBackend(zap.NewNop(), path)
	defer be.Close()
	le := lease.NewLessor(zap.NewNop(), be, nil, lease.LessorConfig{MinLeaseTTL: 1})
	defer le.Stop()
	s := mvcc.NewStore(zap.NewNop(), be, le, mvcc.StoreConfig{})
	defer s.Close()
	if s.Rev() != rev {
		t.Fatalf("replayed to %d: database at revision %d", rev, s.Rev())
	}

	want, err := f.cli.HashKV(ctx, f.ep, rev)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := s.HashStorage().HashByRev(rev)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash != want.Hash {
		t.Errorf("revision %d: replayed key history hashes to %08x, the member's to %08x", rev, got.Hash, want.Hash)
	}

	live, err := f.cli.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(rev))
	if err != nil {
		t.Fatal(err)
	}
	txn := s.Read(mvcc.ConcurrentReadTxMode, traceutil.TODO())
	rr, err := txn.Range(ctx, []byte{0}, []byte{}, mvcc.RangeOptions{Rev: rev})
	txn.End()
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.KVs) != len(live.Kvs) {
		t.Errorf("revision %d: %d keys replayed, the member has %d", rev, len(rr.KVs), len(live.Kvs))
	}
	for i := range min(len(rr.KVs), len(live.Kvs)) {
		g, w := rr.KVs[i], live.Kvs[i]
		if !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || g.CreateRevision != w.CreateRevision ||
			g.ModRevision != w.ModRevision || g.Version != w.Version || g.Lease != w.Lease {
			t.Fatalf("revision %d: replayed %s c%d m%d v%d lease %x (%d bytes), the member has %s c%d m%d v%d lease %x (%d bytes)", rev,
				g.Key, g.CreateRevision, g.ModRevision, g.Version, g.Lease, len(g.Value),
				w.Key, w.CreateRevision, w.ModRevision, w.Version, w.Lease, len(w.Value))
		}
		if g.Lease != 0 {
			l := le.Lookup(lease.LeaseID(g.Lease))
			if l == nil || l.TTL() != f.ttls[g.Lease] {
				t.Fatalf("revision %d: key %s on lease %x: replayed lease %v, granted with TTL %d", rev, g.Key, g.Lease, l, f.ttls[g.Lease])
			}
		}
	}
}

// TestReplayRefuses checks each way a log can fail a replay: a revision
// missing inside or at the end, a revision held twice with different
// contents, a log that disagrees with the database, a lease nowhere to be
// found, and a target before the snapshot. Revisions held twice alike are
// applied once.
func TestReplayRefuses(t *testing.T) {
	f := newLogFixture(t)
	ctx := context.Background()
	log, n := f.log, int64(len(f.log))
	if n < 40 {
		t.Fatalf("log of %d revisions, expected more", n)
	}
	replay := func(t *testing.T, target int64, parts ...[]pitr.Revision) (*pitr.ReplayResult, error) {
		return pitr.Replay(ctx, f.db(t), pitrtest.Seq(parts...), target, pitr.ReplayOptions{})
	}
	t.Run("missing inside", func(t *testing.T) {
		_, err := replay(t, f.T, log[:10], log[13:])
		var me *pitr.MissingError
		if !errors.As(err, &me) || !errors.Is(err, pitr.ErrIncomplete) || me.From != f.S+11 || me.To != f.S+13 {
			t.Fatalf("expected revisions %d through %d missing, got %v", f.S+11, f.S+13, err)
		}
	})
	t.Run("missing at the end", func(t *testing.T) {
		_, err := replay(t, f.T, log[:20])
		var me *pitr.MissingError
		if !errors.As(err, &me) || me.From != f.S+21 || me.To != f.T {
			t.Fatalf("expected revisions %d through %d missing, got %v", f.S+21, f.T, err)
		}
	})
	t.Run("missing after the target", func(t *testing.T) {
		res, err := replay(t, f.S+10, log[:10], log[13:])
		if err != nil || res.To != f.S+10 {
			t.Fatalf("expected a replay to %d, got %+v, %v", f.S+10, res, err)
		}
	})
	t.Run("twice alike", func(t *testing.T) {
		path := f.db(t)
		res, err := pitr.Replay(ctx, path, pitrtest.Seq(log[:30], log[10:]), pitr.Latest, pitr.ReplayOptions{})
		if err != nil || res.To != f.T || res.Duplicates != 20 || res.Revisions != n {
			t.Fatalf("expected %d revisions and 20 duplicates, got %+v, %v", n, res, err)
		}
		f.compare(t, path, f.T)
	})
	t.Run("twice differently", func(t *testing.T) {
		for _, change := range []func(*pitr.Revision){
			func(r *pitr.Revision) { r.Events[0].Kv.Value = append(slices.Clone(r.Events[0].Kv.Value), 'x') },
			func(r *pitr.Revision) { r.Events = r.Events[:len(r.Events)-1] },
			func(r *pitr.Revision) {
				r.Events[0].Type = 1 - r.Events[0].Type
			},
		} {
			i := 15 + slices.IndexFunc(log[15:], func(r pitr.Revision) bool { return r.Events[0].Type == mvccpb.PUT })
			r := cloneRevision(log[i])
			change(&r)
			_, err := replay(t, f.T, log[:i+5], []pitr.Revision{r}, log[i+5:])
			var me *pitr.MismatchError
			if !errors.As(err, &me) || !errors.Is(err, pitr.ErrMismatch) || me.Rev != r.Rev {
				t.Fatalf("expected revision %d refused as held twice differently, got %v", r.Rev, err)
			}
		}
	})
	t.Run("log disagrees with the database", func(t *testing.T) {
		i := slices.IndexFunc(log, func(r pitr.Revision) bool { return r.Events[0].Type == mvccpb.PUT && r.Events[0].Kv.Version > 1 })
		for _, change := range []func(*mvccpb.KeyValue){
			func(kv *mvccpb.KeyValue) { kv.Version++ },
			func(kv *mvccpb.KeyValue) { kv.CreateRevision-- },
			func(kv *mvccpb.KeyValue) { kv.ModRevision++ },
		} {
			r := cloneRevision(log[i])
			change(r.Events[0].Kv)
			_, err := replay(t, f.T, log[:i], []pitr.Revision{r}, log[i+1:])
			var me *pitr.MismatchError
			if !errors.As(err, &me) || me.Rev != r.Rev || !bytes.Equal(me.Key, r.Events[0].Kv.Key) {
				t.Fatalf("expected revision %d refused, got %v", r.Rev, err)
			}
		}
		// A delete of a key the database does not hold.
		r := cloneRevision(log[i])
		r.Events = []*mvccpb.Event{{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("/nowhere"), ModRevision: r.Rev}}}
		if _, err := replay(t, f.T, log[:i], []pitr.Revision{r}, log[i+1:]); !errors.Is(err, pitr.ErrMismatch) {
			t.Fatalf("expected a delete of a missing key refused, got %v", err)
		}
	})
	t.Run("unknown lease", func(t *testing.T) {
		r := cloneRevision(log[5])
		r.Leases = nil
		r.Events = []*mvccpb.Event{{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("/new"), Value: []byte("v"),
			CreateRevision: r.Rev, ModRevision: r.Rev, Version: 1, Lease: 0x7eadbeef}}}
		_, err := replay(t, f.T, log[:5], []pitr.Revision{r}, log[6:])
		var me *pitr.MismatchError
		if !errors.As(err, &me) || me.Rev != r.Rev {
			t.Fatalf("expected a put on an unknown lease refused, got %v", err)
		}
	})
	t.Run("target before the snapshot", func(t *testing.T) {
		if _, err := replay(t, f.S-1, log); !errors.Is(err, pitr.ErrBeforeSnapshot) {
			t.Fatalf("expected pitr.ErrBeforeSnapshot, got %v", err)
		}
	})
	t.Run("revisions before the snapshot are skipped", func(t *testing.T) {
		old := pitr.Revision{Rev: f.S, Events: []*mvccpb.Event{{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("/nowhere")}}}}
		res, err := replay(t, f.S+5, []pitr.Revision{old}, log)
		if err != nil || res.Revisions != 5 {
			t.Fatalf("expected 5 revisions replayed, got %+v, %v", res, err)
		}
	})
	t.Run("the iteration's error", func(t *testing.T) {
		boom := errors.New("segment 3 gone")
		revs := func(yield func(pitr.Revision, error) bool) {
			for _, r := range log[:7] {
				if !yield(r, nil) {
					return
				}
			}
			yield(pitr.Revision{}, boom)
		}
		if _, err := pitr.Replay(ctx, f.db(t), revs, f.T, pitr.ReplayOptions{}); !errors.Is(err, boom) {
			t.Fatalf("expected the iteration's error, got %v", err)
		}
	})
}

func cloneRevision(r pitr.Revision) pitr.Revision {
	c := r
	c.Leases = slices.Clone(r.Leases)
	c.Events = make([]*mvccpb.Event, len(r.Events))
	for i, ev := range r.Events {
		kv := *ev.Kv
		c.Events[i] = &mvccpb.Event{Type: ev.Type, Kv: &kv}
	}
	return c
}
