package pitr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdclient"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/pitrtest"
	"github.com/etcdops/etcdops/pitr"
)

// streamFixture is a one-member cluster with a bucket holding a snapshot of
// it, and what a streamer of tag "t" needs.
type streamFixture struct {
	c     *etcdtest.EmbeddedCluster
	cli   *clientv3.Client
	store *backup.Store
	snap  *backup.Manifest
}

func newStreamFixture(t *testing.T) *streamFixture {
	t.Helper()
	f := &streamFixture{c: etcdtest.StartEmbedded(t, 1), store: openStore(t)}
	f.cli = f.c.Client()
	etcdtest.Put(t, f.cli, "before", "the snapshot")
	m, err := f.snapshot()(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.snap = m
	return f
}

func (f *streamFixture) snapshot() pitr.SnapshotFunc {
	return func(ctx context.Context) (*backup.Manifest, error) {
		dial := func(endpoints ...string) (*clientv3.Client, error) {
			return etcdclient.New(&etcdclient.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second}, nil, backup.StreamDialOptions()...)
		}
		for {
			m, err := backup.Save(ctx, f.store, backup.SaveConfig{Endpoints: f.c.Endpoints(), Dial: dial, Tag: "t", CommandTimeout: 5 * time.Second})
			if err == nil || ctx.Err() != nil || !errors.Is(err, backup.ErrNameTaken) {
				return m, err
			}
			// A snapshot of this second exists: the next second names another.
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// streamer is a running pitr.Streamer; stop ends it and waits.
type streamer struct {
	*pitr.Streamer
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func (f *streamFixture) start(t *testing.T, configure func(*pitr.Streamer)) *streamer {
	t.Helper()
	s := &pitr.Streamer{Client: f.cli, Store: f.store, Tag: "t", Snapshot: f.snapshot(), Interval: 200 * time.Millisecond,
		SegmentSize: 8 << 10, HoldEvery: 300 * time.Millisecond, Logger: zaptest.NewLogger(t)}
	reg := prometheus.NewRegistry()
	s.Metrics = pitr.NewMetrics(reg, "j")
	if configure != nil {
		configure(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &streamer{Streamer: s, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *streamer) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		t.Errorf("streamer: %v", err)
	}
}

// readLog reads every segment of tag t, checks each, and returns the log
// as one series: a revision in two segments must be the same, and is kept
// once.
func readLog(t *testing.T, store *backup.Store) (revs []pitr.Revision, gaps []pitr.GapRecord) {
	t.Helper()
	ctx := context.Background()
	names, err := pitr.ListLog(ctx, store, "t")
	if err != nil {
		t.Fatal(err)
	}
	byRev := map[int64]pitr.Revision{}
	for _, n := range names {
		if n.Gap {
			g, err := pitr.ReadGap(ctx, store, n)
			if err != nil {
				t.Fatal(err)
			}
			gaps = append(gaps, g)
			continue
		}
		seg, err := pitr.ReadSegment(ctx, store, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range seg {
			if prev, ok := byRev[r.Rev]; ok {
				if !pitr.SameChanges(prev, r) {
					t.Fatalf("revision %d differs between two segments", r.Rev)
				}
				continue
			}
			byRev[r.Rev] = r
			revs = append(revs, r)
		}
	}
	return revs, gaps
}

// checkAgainstHistory checks that revs are every revision from..to, each
// with the events etcd's own history has for it, and that every put of
// a lease's key comes after the lease's record with its granted TTL
// (ttls).
func checkAgainstHistory(t *testing.T, cli *clientv3.Client, revs []pitr.Revision, from, to int64, ttls map[int64]int64) {
	t.Helper()
	if len(revs) == 0 || revs[0].Rev != from || revs[len(revs)-1].Rev != to {
		t.Fatalf("log holds %d revisions, want %d-%d", len(revs), from, to)
	}
	for i, r := range revs {
		if r.Rev != from+int64(i) {
			t.Fatalf("log skips from revision %d to %d", from+int64(i)-1, r.Rev)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wch := cli.Watch(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(from))
	i := 0
	for i < len(revs) {
		resp, ok := <-wch
		if !ok || resp.Err() != nil {
			t.Fatalf("history watch: %v", resp.Err())
		}
		for len(resp.Events) > 0 && i < len(revs) {
			rev := resp.Events[0].Kv.ModRevision
			n := 0
			for n < len(resp.Events) && resp.Events[n].Kv.ModRevision == rev {
				n++
			}
			want := pitr.Revision{Rev: rev, Events: toEvents(resp.Events[:n])}
			if !pitr.SameChanges(revs[i], want) {
				t.Fatalf("revision %d:\nlog     %v\nhistory %v", rev, revs[i].Events, want.Events)
			}
			resp.Events = resp.Events[n:]
			i++
		}
	}
	seen := map[int64]bool{}
	recorded := 0
	for _, r := range revs {
		for _, l := range r.Leases {
			seen[l.ID] = true
			if want, ok := ttls[l.ID]; ok && l.TTL != -1 {
				if l.TTL != want {
					t.Fatalf("revision %d records lease %x with TTL %d, granted %d", r.Rev, l.ID, l.TTL, want)
				}
				recorded++
			}
		}
		for _, ev := range r.Events {
			if id := ev.Kv.Lease; id != 0 && !seen[id] {
				t.Fatalf("revision %d puts %q on lease %x, which the log has not recorded", r.Rev, ev.Kv.Key, id)
			}
			if ev.Type == mvccpb.PUT {
				got, err := cli.Get(ctx, string(ev.Kv.Key), clientv3.WithRev(r.Rev))
				if err != nil || len(got.Kvs) != 1 || !sameKV(got.Kvs[0], ev.Kv) {
					t.Fatalf("revision %d: %q is %v in etcd, %v in the log (%v)", r.Rev, ev.Kv.Key, got, ev.Kv, err)
				}
			}
		}
	}
	if recorded == 0 {
		t.Fatal("no lease recorded with its granted TTL")
	}
}

func toEvents(evs []*clientv3.Event) []*mvccpb.Event {
	out := make([]*mvccpb.Event, len(evs))
	for i, e := range evs {
		out[i] = (*mvccpb.Event)(e)
	}
	return out
}

func currentRevision(t *testing.T, cli *clientv3.Client) int64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), "some-key")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// waitLogged waits until the log reaches rev.
func waitLogged(t *testing.T, store *backup.Store, rev int64) {
	t.Helper()
	etcdtest.Eventually(t, 30*time.Second, func() error {
		last, err := pitr.LastLogged(context.Background(), store, "t")
		if err == nil && last < rev {
			err = fmt.Errorf("log reaches %d, not %d", last, rev)
		}
		return err
	})
}

// The log holds every revision after the snapshot, each as etcd's history
// has it, through a streamer stopped and started again mid-run; the hold
// says how far it is flushed; once writes stop, so do segments.
func TestStreamerLogsEveryRevision(t *testing.T) {
	f := newStreamFixture(t)
	w := pitrtest.NewWorkload(t, f.cli, 1)
	s := f.start(t, nil)
	w.Run(300)
	w.Expire(3)
	s.stop(t)
	w.Run(100) // while no streamer runs
	s = f.start(t, nil)
	w.Run(300)
	end := currentRevision(t, f.cli)
	waitLogged(t, f.store, end)

	revs, gaps := readLog(t, f.store)
	if len(gaps) != 0 {
		t.Fatalf("gaps %v", gaps)
	}
	// The log's end moves on as holds are written; check through end.
	for len(revs) > 0 && revs[len(revs)-1].Rev > end {
		revs = revs[:len(revs)-1]
	}
	checkAgainstHistory(t, f.cli, revs, f.snap.Revision+1, end, w.TTLs)

	etcdtest.Eventually(t, 30*time.Second, func() error {
		held, ok, err := pitr.CompactionBound(context.Background(), f.cli)
		if err == nil && (!ok || held < end) {
			err = fmt.Errorf("hold at %d (%v), want at least %d", held, ok, end)
		}
		return err
	})
	// Quiet now: the hold's own writes make at most one more segment
	// (logged like any revision) and no more.
	quiet := currentRevision(t, f.cli)
	waitLogged(t, f.store, quiet)
	names, _ := pitr.ListLog(context.Background(), f.store, "t")
	deadline := time.Now().Add(5 * s.HoldEvery)
	for time.Now().Before(deadline) {
		now, _ := pitr.ListLog(context.Background(), f.store, "t")
		if len(now) > len(names)+1 {
			t.Fatalf("%d segments written while nothing changed: the hold feeds itself", len(now)-len(names))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := s.metric(t, "etcdops_schedule_pitr_segments_total"); n == 0 {
		t.Error("segments_total is 0")
	}
	if got := s.metric(t, "etcdops_schedule_pitr_last_flushed_revision"); got < float64(end) {
		t.Errorf("last flushed revision metric %v, want at least %d", got, end)
	}
	s.stop(t)
	if _, held, _ := pitr.CompactionBound(context.Background(), f.cli); held {
		t.Error("a stopped streamer's hold is still there")
	}
}

// A streamer that was stopped while compaction passed its log records the
// gap, takes a snapshot at once, and goes on from it.
func TestStreamerGapAfterCompaction(t *testing.T) {
	f := newStreamFixture(t)
	w := pitrtest.NewWorkload(t, f.cli, 2)
	s := f.start(t, nil)
	w.Run(50)
	logged := currentRevision(t, f.cli)
	waitLogged(t, f.store, logged)
	s.stop(t)
	logged, err := pitr.LastLogged(context.Background(), f.store, "t")
	if err != nil {
		t.Fatal(err)
	}
	w.Run(50)
	compactAt := currentRevision(t, f.cli)
	if _, err := f.cli.Compact(context.Background(), compactAt); err != nil {
		t.Fatal(err)
	}
	s = f.start(t, nil)
	var gap pitr.GapRecord
	etcdtest.Eventually(t, 30*time.Second, func() error {
		_, gaps := readLog(t, f.store)
		if len(gaps) != 1 {
			return fmt.Errorf("%d gaps", len(gaps))
		}
		gap = gaps[0]
		return nil
	})
	if gap.First != logged+1 || gap.Last < compactAt {
		t.Fatalf("gap %d-%d, want from %d past the compaction at %d", gap.First, gap.Last, logged+1, compactAt)
	}
	snap, err := f.store.Find(context.Background(), "latest", "t")
	if err != nil || snap.Key() != gap.Snapshot || snap.Manifest.Revision != gap.Last {
		t.Fatalf("newest snapshot %v (%v), gap names %s at %d", snap.Key(), err, gap.Snapshot, gap.Last)
	}
	// The gap is counted once its record is in the bucket, which the poll above may see first.
	etcdtest.Eventually(t, 10*time.Second, func() error {
		if n := s.metric(t, "etcdops_schedule_pitr_gaps_total"); n != 1 {
			return fmt.Errorf("gaps_total %v, want 1", n)
		}
		return nil
	})
	// /healthz reads the gap from the streamer's state.
	if st := s.Metrics.State(); st.Gap == nil || *st.Gap != gap {
		t.Errorf("the streamer's state has gap %+v, want %+v", st.Gap, gap)
	}
	w.Run(100)
	end := currentRevision(t, f.cli)
	waitLogged(t, f.store, end)
	if st := s.Metrics.State(); !st.Streaming {
		t.Errorf("the streamer's state says it does not stream: %+v", st)
	}
	revs, _ := readLog(t, f.store)
	var after []pitr.Revision
	for _, r := range revs {
		if r.Rev > gap.Last && r.Rev <= end {
			after = append(after, r)
		}
	}
	checkAgainstHistory(t, f.cli, after, gap.Last+1, end, w.TTLs)
}

// metric is the value of the streamer's metric name.
func (r *streamer) metric(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			m := mf.Metric[0]
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func openStore(t *testing.T) *backup.Store {
	t.Helper()
	store, err := backup.OpenStore(context.Background(), "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func sameKV(x, y *mvccpb.KeyValue) bool {
	return string(x.Key) == string(y.Key) && string(x.Value) == string(y.Value) && x.CreateRevision == y.CreateRevision &&
		x.ModRevision == y.ModRevision && x.Version == y.Version && x.Lease == y.Lease
}

// On a cluster no write ever reached, the streamer's first snapshot reads
// revision 0 (as etcdutl says) and the log goes on from etcd's revision 1:
// the first write (revision 2) is logged and the chain plans from it.
func TestStreamerOnANeverWrittenCluster(t *testing.T) {
	f := &streamFixture{c: etcdtest.StartEmbedded(t, 1), store: openStore(t)}
	f.cli = f.c.Client()
	s := f.start(t, nil)
	etcdtest.Eventually(t, 30*time.Second, func() error {
		snap, err := f.store.Find(context.Background(), "latest", "t")
		if err == nil && snap.Manifest.Revision != 0 {
			t.Fatalf("the first snapshot is at revision %d, want 0 (nothing written)", snap.Manifest.Revision)
		}
		return err
	})
	w := pitrtest.NewWorkload(t, f.cli, 5)
	w.Run(30)
	end := currentRevision(t, f.cli)
	waitLogged(t, f.store, end)
	s.stop(t)
	revs, _ := readLog(t, f.store)
	checkAgainstHistory(t, f.cli, revs, 2, end, w.TTLs)
	l, err := pitr.List(context.Background(), f.store, "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pitr.Plan(l, 2); err != nil {
		t.Errorf("plan to the first write: %v", err)
	}
}
