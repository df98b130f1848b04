package pitr

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/etcdops/etcdops/backup"
)

func openTestStore(t *testing.T) *backup.Store {
	t.Helper()
	store, err := backup.OpenStore(context.Background(), "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// Segments go through the job's codec and come back whole; a listing is in revision order and
// holds gaps; a second write of one name counts as written.
func TestSegmentStore(t *testing.T) {
	ctx := context.Background()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, codec := range []backup.Codec{{}, {Compress: true}, {Compress: true, Recipients: []age.Recipient{id.Recipient()}}} {
		store := openTestStore(t)
		revs := sampleRevisions()
		n1, size, taken, err := WriteSegment(ctx, store, "etcd-1", codec, revs[2:])
		if err != nil || taken || size == 0 {
			t.Fatalf("write: %v, taken %v, size %d", err, taken, size)
		}
		if _, _, taken, err := WriteSegment(ctx, store, "etcd-1", codec, revs[2:]); err != nil || !taken {
			t.Fatalf("second write of %s: %v, taken %v", n1, err, taken)
		}
		n0, _, _, err := WriteSegment(ctx, store, "etcd-1", codec, revs[:2])
		if err != nil {
			t.Fatal(err)
		}
		gap := GapRecord{Tag: "etcd-1", First: 10, Last: 20, Time: time.Now().UTC().Truncate(time.Second), Reason: "compacted", Snapshot: "etcd-1_2026-12-05_10-00-00.db"}
		if err := WriteGap(ctx, store, gap); err != nil {
			t.Fatal(err)
		}
		if err := WriteGap(ctx, store, gap); err != nil {
			t.Fatalf("second write of a gap: %v", err)
		}
		names, err := ListLog(ctx, store, "etcd-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(names) != 3 || names[0] != n0 || names[1] != n1 || names[2] != gap.Name() {
			t.Fatalf("listed %v", names)
		}
		got, err := ReadSegment(ctx, store, n1, []age.Identity{id})
		if err != nil {
			t.Fatal(err)
		}
		sameRevisions(t, got, revs[2:])
		g, err := ReadGap(ctx, store, gap.Name())
		if err != nil || g != gap {
			t.Fatalf("gap read back as %+v, %v", g, err)
		}
		if _, err := ReadSegment(ctx, store, SegmentName{Tag: "etcd-1", First: 1, Last: 2, Ext: n1.Ext}, []age.Identity{id}); !errors.Is(err, backup.ErrNoObject) {
			t.Fatalf("a missing segment: %v, want ErrNoObject", err)
		}
		// A name that does not say what the segment holds is corrupt.
		lying := n1
		lying.Last++
		r, err := store.OpenObject(ctx, n1.String())
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := store.WriteObject(ctx, lying.String(), func(w io.Writer) error { _, err := w.Write(raw); return err }); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadSegment(ctx, store, lying, []age.Identity{id}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s holding revisions %d-%d: %v, want ErrCorrupt", lying, n1.First, n1.Last, err)
		}
	}
}
