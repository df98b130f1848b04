package main

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/pitrtest"
	"github.com/etcdops/etcdops/pitr"
)

// TestPruneRemovesTheLogBeforeTheOldestKeptSnapshot: backup prune that
// removes a tag's older snapshot also removes the log objects (segments and
// gap records) that end at or before the oldest kept snapshot's revision,
// keeps a segment that straddles it, prints them with --dry-run (removing
// nothing), and leaves the chain from the kept snapshot recoverable to the
// same end, every segment verified; a save's --keep-… does the same.
func TestPruneRemovesTheLogBeforeTheOldestKeptSnapshot(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.StartEmbedded(t, 1)
	cli := c.Client()
	w := pitrtest.NewWorkload(t, cli, 21)
	w.Run(30)
	dir, store := pitrtest.FileBucket(t)
	bucket := "file://" + dir
	now := time.Now().UTC().Truncate(time.Second)
	s1 := pitrtest.SaveInPast(t, store, c.Endpoints(), "t", now.Add(-2*time.Hour)).Revision
	w.Run(60)
	s2 := pitrtest.SaveInPast(t, store, c.Endpoints(), "t", now.Add(-time.Hour)).Revision
	w.Run(60)
	end := w.Rev()
	if err := pitr.WriteGap(ctx, store, pitr.GapRecord{Tag: "t", First: 2, Last: 3, Time: now, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	log := pitrtest.WatchLog(t, cli, s1+1, end, w.TTLs)
	pitrtest.WriteSegments(t, store, "t", backup.Codec{Compress: true}, log, 25)
	// A tag without a log: prune treats it as before.
	pitrtest.SaveInPast(t, store, c.Endpoints(), "other", now.Add(-2*time.Hour))
	pitrtest.SaveInPast(t, store, c.Endpoints(), "other", now.Add(-time.Hour))

	before, err := pitr.ListLog(ctx, store, "t")
	if err != nil {
		t.Fatal(err)
	}
	var gone, stay []string
	straddles := false
	for _, n := range before {
		if n.Last <= s2 {
			gone = append(gone, n.String())
		} else {
			stay = append(stay, n.String())
			straddles = straddles || n.First <= s2
		}
	}
	if len(gone) < 2 || !straddles {
		t.Fatalf("fixture: log %v around snapshot revision %d has no objects to remove or none straddling it", before, s2)
	}

	out, errOut, code := runEtcdops(t, nil, "backup", "prune", "--from", bucket, "--keep-last", "1", "--dry-run")
	if code != 0 {
		t.Fatalf("prune --dry-run: exit %d\n%s%s", code, out, errOut)
	}
	for _, n := range gone {
		if !strings.Contains(out, "would remove  "+n) {
			t.Errorf("prune --dry-run does not list %s:\n%s", n, out)
		}
	}
	if after, _ := pitr.ListLog(ctx, store, "t"); !reflect.DeepEqual(after, before) {
		t.Fatalf("prune --dry-run changed the log: %v, was %v", after, before)
	}

	out, errOut, code = runEtcdops(t, nil, "backup", "prune", "--from", bucket, "--keep-last", "1")
	if code != 0 {
		t.Fatalf("prune: exit %d\n%s%s", code, out, errOut)
	}
	after, err := pitr.ListLog(ctx, store, "t")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, n := range after {
		left = append(left, n.String())
	}
	if !reflect.DeepEqual(left, stay) {
		t.Errorf("after prune --keep-last 1 the log holds %v, want %v (everything ending after revision %d)", left, stay, s2)
	}
	for _, tag := range []string{"t", "other"} {
		snaps, err := store.List(ctx, tag, false)
		if err != nil || len(snaps) != 1 {
			t.Errorf("tag %s after prune: %d snapshots, %v; want 1", tag, len(snaps), err)
		}
	}
	l, err := pitr.List(ctx, store, "t")
	if err != nil {
		t.Fatal(err)
	}
	res, err := pitr.Verify(ctx, "t", l, pitr.Reader(store, nil), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) > 0 || len(res.Ranges) != 1 || res.Ranges[0].From != s2 || res.Ranges[0].To != end {
		t.Errorf("after prune: ranges %v, problems %v; want revisions %d-%d and no problem", pitr.FormatRanges(res.Ranges), res.Problems, s2, end)
	}

	// A save's retention (as a schedule's run) prunes the log too: a new
	// snapshot past the log's end, --keep-last 1, leaves no log object.
	w.Run(5)
	out, errOut, code = runEtcdops(t, nil, "backup", "save", "--endpoints="+c.Endpoints()[0], "--to", bucket, "--tag", "t", "--keep-last", "1")
	if code != 0 {
		t.Fatalf("save --keep-last 1: exit %d\n%s%s", code, out, errOut)
	}
	if after, err := pitr.ListLog(ctx, store, "t"); err != nil || len(after) != 0 {
		t.Errorf("after save --keep-last 1 past the log's end the log holds %v, %v; want nothing", after, err)
	}
}

// TestPruneKeepsThePointInTimeWindow: backup prune --keep-last 1
// --pitr-keep-within D keeps, of a tag with a log, the newest snapshot
// taken at or before D before its newest one, with the log after it, so
// that every revision from there is still recoverable (a revision between
// the two kept snapshots is planned from the older one); older snapshots
// and the log before it go. --dry-run says why each stays.
func TestPruneKeepsThePointInTimeWindow(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.StartEmbedded(t, 1)
	cli := c.Client()
	w := pitrtest.NewWorkload(t, cli, 22)
	w.Run(20)
	dir, store := pitrtest.FileBucket(t)
	bucket := "file://" + dir
	now := time.Now().UTC().Truncate(time.Second)
	s1 := pitrtest.SaveInPast(t, store, c.Endpoints(), "t", now.Add(-3*time.Hour)).Revision
	w.Run(40)
	s2 := pitrtest.SaveInPast(t, store, c.Endpoints(), "t", now.Add(-2*time.Hour)).Revision
	w.Run(40)
	s3 := pitrtest.SaveInPast(t, store, c.Endpoints(), "t", now.Add(-time.Hour)).Revision
	w.Run(20)
	end := w.Rev()
	pitrtest.WriteSegments(t, store, "t", backup.Codec{}, pitrtest.WatchLog(t, cli, s1+1, end, w.TTLs), 15)

	out, errOut, code := runEtcdops(t, nil, "backup", "prune", "--from", bucket, "--keep-last", "1", "--pitr-keep-within", "45m", "--dry-run")
	if code != 0 || !strings.Contains(out, "start of the 45m0s point-in-time window") {
		t.Fatalf("prune --dry-run: exit %d, no reason for the window's snapshot\n%s%s", code, out, errOut)
	}
	out, errOut, code = runEtcdops(t, nil, "backup", "prune", "--from", bucket, "--keep-last", "1", "--pitr-keep-within", "45m")
	if code != 0 {
		t.Fatalf("prune: exit %d\n%s%s", code, out, errOut)
	}
	l, err := pitr.List(ctx, store, "t")
	if err != nil {
		t.Fatal(err)
	}
	var kept []int64
	for _, b := range l.Bases {
		kept = append(kept, b.Revision)
	}
	slices.Sort(kept)
	if !reflect.DeepEqual(kept, []int64{s2, s3}) {
		t.Errorf("after prune --keep-last 1 --pitr-keep-within 45m: snapshots at revisions %v, want %d and %d", kept, s2, s3)
	}
	for _, n := range l.Log {
		if n.Last <= s2 {
			t.Errorf("log object %s ends at or before the window's snapshot (revision %d): not removed", n, s2)
		}
	}
	res, err := pitr.Verify(ctx, "t", l, pitr.Reader(store, nil), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) > 0 || len(res.Ranges) != 1 || res.Ranges[0].From != s2 || res.Ranges[0].To != end {
		t.Errorf("after prune: ranges %s, problems %v; want revisions %d-%d", pitr.FormatRanges(res.Ranges), res.Problems, s2, end)
	}
	if ch, err := pitr.Plan(l, s3-1); err != nil || ch.Base.Revision != s2 {
		t.Errorf("revision %d, inside the window: %+v, %v; want it planned from the snapshot at %d", s3-1, ch, err, s2)
	}

	// Without the window, --keep-last 1 leaves the newest snapshot only.
	out, errOut, code = runEtcdops(t, nil, "backup", "prune", "--from", bucket, "--keep-last", "1")
	if code != 0 {
		t.Fatalf("prune: exit %d\n%s%s", code, out, errOut)
	}
	if snaps, err := store.List(ctx, "t", false); err != nil || len(snaps) != 1 {
		t.Errorf("after prune --keep-last 1: %v snapshots, %v; want 1", snaps, err)
	}
}
