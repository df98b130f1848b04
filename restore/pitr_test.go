package restore

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/pitrtest"
	"github.com/etcdops/etcdops/pitr"
)

// TestPointInTime restores a tag of a bucket (two snapshots, an encrypted
// and compressed log with an overlapping segment) to revisions, to the end
// of its log and to a time, and compares each with the member it was
// logged from at that revision: etcd's KV hash of the replayed database
// against the member's, and, for one target, every key of a member started
// on the data dir that Run wrote. Targets outside the log or in a gap are
// refused with the range.
func TestPointInTime(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.StartEmbedded(t, 1)
	cli := c.Client()
	w := pitrtest.NewWorkload(t, cli, 7)
	w.Run(150)
	dir, store := pitrtest.FileBucket(t)
	t1 := time.Now().UTC().Truncate(time.Second)
	s1 := pitrtest.Save(t, store, c.Endpoints(), "t", t1).Revision
	w.Run(200)
	w.Expire(3)
	t2 := time.Now().UTC().Truncate(time.Second)
	if !t2.After(t1) {
		t2 = t1.Add(time.Second)
	}
	s2 := pitrtest.Save(t, store, c.Endpoints(), "t", t2).Revision
	w.Run(200)
	end := w.Rev()
	log := pitrtest.WatchLog(t, cli, s1+1, end, w.TTLs)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	codec := backup.Codec{Compress: true, Recipients: []age.Recipient{id.Recipient()}}
	segs := pitrtest.WriteSegments(t, store, "t", codec, log, 60)
	src := Source{From: "file://" + dir, Tag: "t", Identities: []age.Identity{id}, SpoolDir: t.TempDir(), Logger: zap.NewNop()}

	rnd := rand.New(rand.NewPCG(3, 4))
	type target struct {
		to        PointInTime
		rev, base int64
	}
	targets := []target{
		{to: PointInTime{Revision: s1 + 1}, rev: s1 + 1, base: s1},
		{to: PointInTime{Revision: s2 - 1}, rev: s2 - 1, base: s1},
		{to: PointInTime{Revision: s2}, rev: s2, base: s2},
		{to: PointInTime{Revision: pitr.Latest}, rev: end, base: s2},
	}
	for range 2 {
		r, base := s1+1+rnd.Int64N(end-s1), s1
		if r >= s2 {
			base = s2
		}
		targets = append(targets, target{to: PointInTime{Revision: r}, rev: r, base: base})
	}
	for i := len(log) - 2; i > 0; i-- {
		if log[i].Rev > s2 && log[i+1].Received.After(log[i].Received) {
			targets = append(targets, target{to: PointInTime{Time: log[i].Received}, rev: log[i].Rev, base: s2})
			break
		}
	}
	var full *Snapshot
	for _, tg := range targets {
		s, res, err := OpenPointInTime(ctx, src, tg.to)
		if err != nil {
			t.Fatalf("to %+v: %v", tg.to, err)
		}
		defer s.Close()
		if err := s.Inspect(); err != nil {
			t.Fatal(err)
		}
		want, err := cli.HashKV(ctx, c.Endpoints()[0], tg.rev)
		if err != nil {
			t.Fatal(err)
		}
		if s.Revision != tg.rev || res.Chain.Base.Revision != tg.base || s.KVHash != want.Hash {
			t.Fatalf("to %+v: revision %d from snapshot %d, KV hash %d; expected %d from %d, the member's KV hash %d",
				tg.to, s.Revision, res.Chain.Base.Revision, s.KVHash, tg.rev, tg.base, want.Hash)
		}
		if tg.rev == end {
			full = s
		}
	}
	restoreAndCompare(t, cli, full, end)

	for _, tg := range []struct {
		to  PointInTime
		err error
	}{
		{PointInTime{Revision: s1 - 1}, pitr.ErrOutOfRange},
		{PointInTime{Revision: end + 1}, pitr.ErrOutOfRange},
		{PointInTime{Time: t1.Add(-time.Second)}, pitr.ErrOutOfRange},
	} {
		if _, _, err := OpenPointInTime(ctx, src, tg.to); !errors.Is(err, tg.err) {
			t.Errorf("to %+v: got %v, expected %v", tg.to, err, tg.err)
		}
	}
	// A segment gone between the two snapshots: a gap.
	gone := segs[1]
	if err := os.Remove(filepath.Join(dir, gone.String())); err != nil {
		t.Fatal(err)
	}
	for _, n := range segs {
		if n != gone && n.First <= gone.First && n.Last >= gone.First {
			os.Remove(filepath.Join(dir, n.String()))
		}
	}
	_, _, err = OpenPointInTime(ctx, src, PointInTime{Revision: gone.First})
	var re *pitr.RangeError
	if !errors.Is(err, pitr.ErrInHole) || !errors.As(err, &re) || re.Hole.To != s2-1 {
		t.Errorf("to revision %d, in a gap up to the snapshot at %d: got %v", gone.First, s2, err)
	}
}

// restoreAndCompare writes a one-member cluster from s with Run, starts
// it, and compares every key it serves with the member of cli at rev.
func restoreAndCompare(t *testing.T, cli *clientv3.Client, s *Snapshot, rev int64) {
	t.Helper()
	ctx := context.Background()
	specs := etcdtest.SpecsNamed(t, t.TempDir(), "r0")
	p, err := NewPlan(Config{InitialCluster: specs[0].InitialCluster, Token: specs[0].Token,
		DataDirTemplate: filepath.Join(filepath.Dir(specs[0].DataDir), "{name}.etcd"),
		ClientURLs:      "r0=" + specs[0].ClientURL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, p, s, Options{Logger: zap.NewNop()}); err != nil {
		t.Fatal(err)
	}
	r := etcdtest.StartEmbeddedSpecs(t, specs)
	got, err := pitrtest.ReadState(ctx, r.Client(), 0)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pitrtest.ReadState(ctx, cli, rev)
	if err != nil {
		t.Fatal(err)
	}
	if err := pitrtest.SameState(got, want); err != nil {
		t.Fatalf("restored member: %v", err)
	}
	if err := pitrtest.CheckLeases(ctx, r.Client(), got); err != nil {
		t.Fatalf("restored member: %v", err)
	}
}

// TestPointInTimeObjectGoneAfterPlanning: a restore uses what it listed; a
// snapshot or a segment of its chain removed after it planned (a prune
// running meanwhile) fails it with an error that starts by naming the
// object and says it was listed, and leaves nothing behind in the spool
// directory.
func TestPointInTimeObjectGoneAfterPlanning(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.StartEmbedded(t, 1)
	cli := c.Client()
	w := pitrtest.NewWorkload(t, cli, 11)
	w.Run(40)
	dir, store := pitrtest.FileBucket(t)
	m := pitrtest.Save(t, store, c.Endpoints(), "t", time.Now().UTC().Truncate(time.Second))
	w.Run(80)
	end := w.Rev()
	segs := pitrtest.WriteSegments(t, store, "t", backup.Codec{Compress: true}, pitrtest.WatchLog(t, cli, m.Revision+1, end, w.TTLs), 20)
	if len(segs) < 3 {
		t.Fatalf("fixture: %d segments", len(segs))
	}
	for _, tc := range []struct {
		name   string
		remove string // the object removed once the restore has planned
		is     error
	}{
		{"a log segment", segs[len(segs)-2].String(), backup.ErrNoObject},
		{"the snapshot", m.Name, backup.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spool := t.TempDir()
			planned := false
			aside := filepath.Join(t.TempDir(), "aside")
			t.Cleanup(func() { os.Rename(aside, filepath.Join(dir, tc.remove)) })
			lg := zap.New(zapcore.RegisterHooks(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.DebugLevel), func(e zapcore.Entry) error {
				if e.Message == "point in time planned" && !planned {
					planned = true
					if err := os.Rename(filepath.Join(dir, tc.remove), aside); err != nil {
						t.Error(err)
					}
				}
				return nil
			}))
			src := Source{From: "file://" + dir, Tag: "t", SpoolDir: spool, Logger: lg}
			s, _, err := OpenPointInTime(ctx, src, PointInTime{Revision: pitr.Latest})
			if !planned {
				t.Fatal("the restore never logged its plan")
			}
			if s != nil || !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.remove) || !strings.Contains(err.Error(), "listed") ||
				!strings.HasPrefix(err.Error(), strings.Join(strings.Fields(tc.name)[1:], " ")) {
				t.Errorf("restore with %s gone after planning: %v; want an error that names it as listed and gone", tc.remove, err)
			}
			if left, _ := os.ReadDir(spool); len(left) > 0 {
				t.Errorf("the failed restore left %v in its spool directory", left)
			}
		})
	}
}
