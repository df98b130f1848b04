package main

import (
	"context"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/pitr"
)

// loggedLog is what a tag's log in a bucket holds, read whole.
type loggedLog struct {
	segments, overlaps int
	// first and last are the log's first and last revisions.
	first, last int64
	// received is when the streamer received each revision.
	received map[int64]time.Time
}

// readContiguousLog reads every segment of tag's log and fails the test
// unless the log starts right after one of the tag's snapshots and goes on
// without a hole or a gap record, and unless a revision held by two
// segments (two streamers overlapping) is the same in both.
func readContiguousLog(t *testing.T, store *backup.Store, tag string, ids []age.Identity) loggedLog {
	t.Helper()
	ctx := context.Background()
	names, err := pitr.ListLog(ctx, store, tag)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := store.List(ctx, tag, true)
	if err != nil || len(names) == 0 {
		t.Fatalf("snapshots of %s: %v; log %v", tag, err, names)
	}
	based := false
	for _, s := range snaps {
		based = based || s.Complete() && s.Manifest.Revision+1 >= names[0].First && s.Manifest.Revision <= names[0].Last
	}
	if !based {
		t.Fatalf("the log of %s starts at %d, after no snapshot", tag, names[0].First)
	}
	l := loggedLog{segments: len(names), first: names[0].First, received: map[int64]time.Time{}}
	logged := map[int64]pitr.Revision{}
	next := names[0].First
	for _, n := range names {
		if n.Gap {
			t.Fatalf("gap %s recorded", n)
		}
		if n.First > next {
			t.Fatalf("log of %s holds %s after revision %d: a hole", tag, n, next-1)
		}
		if n.First < next {
			l.overlaps++
		}
		revs, err := pitr.ReadSegment(ctx, store, n, ids)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range revs {
			if seen, ok := logged[r.Rev]; ok {
				if !pitr.SameChanges(seen, r) {
					t.Fatalf("revision %d is in two segments of %s and differs", r.Rev, tag)
				}
				continue
			}
			logged[r.Rev], l.received[r.Rev] = r, r.Received
		}
		next = max(next, n.Last+1)
	}
	l.last = next - 1
	return l
}
