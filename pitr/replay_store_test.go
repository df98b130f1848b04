package pitr_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/pkg/v3/traceutil"
	"go.etcd.io/etcd/server/v3/lease"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.uber.org/zap"

	"github.com/etcdops/etcdops/internal/pitrtest"
	"github.com/etcdops/etcdops/pitr"
)

// TestReplayWritesAsEtcdsStore replays a log of puts (new keys, existing
// keys, keys moved on and off leases), deletes and transactions mixing
// both onto a database, and applies the same writes through etcd's own
// mvcc store, one write transaction per revision, onto a copy of the same
// database: the key and lease buckets must come out byte for byte equal.
// A second replay continues the first database from where it stopped.
func TestReplayWritesAsEtcdsStore(t *testing.T) {
	dir := t.TempDir()
	replayed, reference := filepath.Join(dir, "replayed"), filepath.Join(dir, "reference")
	log := storeLog(2, 3000)
	for _, p := range []string{replayed, reference} {
		be := backend.NewDefaultBackend(zap.NewNop(), p)
		le := lease.NewLessor(zap.NewNop(), be, nil, lease.LessorConfig{MinLeaseTTL: 1})
		s := mvcc.NewStore(zap.NewNop(), be, le, mvcc.StoreConfig{})
		s.Close()
		le.Stop()
		be.Close()
	}
	ctx := context.Background()
	if _, err := pitr.Replay(ctx, replayed, pitrtest.Seq(log[:1000]), pitr.Latest, pitr.ReplayOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := pitr.Replay(ctx, replayed, pitrtest.Seq(log[1000:]), pitr.Latest, pitr.ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 1001 || res.To != 3001 {
		t.Fatalf("second replay: revisions %d to %d, want 1001 to 3001", res.From, res.To)
	}

	be := backend.NewDefaultBackend(zap.NewNop(), reference)
	le := lease.NewLessor(zap.NewNop(), be, nil, lease.LessorConfig{MinLeaseTTL: 1})
	s := mvcc.NewStore(zap.NewNop(), be, le, mvcc.StoreConfig{})
	for _, r := range log {
		for _, l := range r.Leases {
			if _, err := le.Grant(lease.LeaseID(l.ID), l.TTL); err != nil {
				t.Fatal(err)
			}
		}
		txn := s.Write(traceutil.TODO())
		for _, ev := range r.Events {
			if ev.Type == mvccpb.PUT {
				txn.Put(ev.Kv.Key, ev.Kv.Value, lease.LeaseID(ev.Kv.Lease))
			} else {
				txn.DeleteRange(ev.Kv.Key, nil)
			}
		}
		txn.End()
	}
	s.Close()
	le.Stop()
	be.Close()

	for _, bucket := range []backend.Bucket{schema.Key, schema.Lease} {
		got, want := readBucket(t, replayed, bucket), readBucket(t, reference, bucket)
		if len(got) != len(want) {
			t.Fatalf("bucket %s: %d entries, etcd's store wrote %d", bucket.String(), len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i][0], want[i][0]) || !bytes.Equal(got[i][1], want[i][1]) {
				t.Fatalf("bucket %s, entry %d: %x=%x, etcd's store wrote %x=%x", bucket.String(), i, got[i][0], got[i][1], want[i][0], want[i][1])
			}
		}
	}
}

func readBucket(t *testing.T, path string, bucket backend.Bucket) [][2][]byte {
	be := backend.NewDefaultBackend(zap.NewNop(), path)
	defer be.Close()
	tx := be.ReadTx()
	tx.RLock()
	defer tx.RUnlock()
	var kvs [][2][]byte
	if err := tx.UnsafeForEach(bucket, func(k, v []byte) error {
		kvs = append(kvs, [2][]byte{slices.Clone(k), slices.Clone(v)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return kvs
}

// storeLog makes n revisions from first on as etcd would log them, over
// 40 keys and 3 leases.
func storeLog(first, n int64) []pitr.Revision {
	type state struct{ create, version int64 }
	keys := map[string]*state{}
	rnd := rand.New(rand.NewPCG(3, 3))
	granted := map[int64]bool{}
	var revs []pitr.Revision
	for rev := first; rev < first+n; rev++ {
		r := pitr.Revision{Rev: rev}
		used := map[string]bool{}
		for range 1 + rnd.IntN(3) {
			key := fmt.Sprintf("/k/%02d", rnd.IntN(40))
			if used[key] {
				continue
			}
			used[key] = true
			st := keys[key]
			if st != nil && rnd.IntN(4) == 0 {
				delete(keys, key)
				r.Events = append(r.Events, &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}})
				continue
			}
			if st == nil {
				st = &state{create: rev}
				keys[key] = st
			}
			st.version++
			var id int64
			if l := rnd.IntN(6); l < 3 {
				id = int64(l + 1)
				if !granted[id] {
					granted[id] = true
					r.Leases = append(r.Leases, pitr.Lease{ID: id, TTL: 60})
				}
			}
			r.Events = append(r.Events, &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(key),
				Value: []byte(fmt.Sprintf("v%d", rev)), CreateRevision: st.create, ModRevision: rev, Version: st.version, Lease: id}})
		}
		revs = append(revs, r)
	}
	return revs
}
