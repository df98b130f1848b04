package pitr_test

import (
	"bufio"
	"context"
	"fmt"
	"iter"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/lease"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.uber.org/zap"

	"github.com/etcdops/etcdops/pitr"
)

// BenchmarkReplay replays 1,000,000 revisions of 256-byte values (70% puts
// of new and existing keys, 15% deletes, 15% transactions of three puts)
// onto an empty database, as a restore replays a log: the revisions are
// written first as segments of 1,000 revisions (one second at 1,000
// writes/s) to files, then read, decoded and replayed through Fetch with
// restore's read-ahead, so the figure is the replay's with its decoding,
// without the network. It reports revisions/s, MB/s of keys and values,
// and the process's peak RSS.
//
//	scripts/test.sh -run XXX -bench BenchmarkReplay -benchtime 1x ./pitr/
func BenchmarkReplay(b *testing.B) {
	const revisions, perSegment = 1_000_000, 1_000
	dir := b.TempDir()
	segs := writeSegments(b, dir, synthetic(2, revisions), perSegment)
	read := func(ctx context.Context, n pitr.SegmentName) ([]pitr.Revision, error) {
		f, err := os.Open(filepath.Join(dir, strconv.FormatInt(n.First, 10)))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return pitr.DecodeSegment(f)
	}
	for range b.N {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "db")
		be := backend.NewDefaultBackend(zap.NewNop(), path)
		le := lease.NewLessor(zap.NewNop(), be, nil, lease.LessorConfig{MinLeaseTTL: 1})
		s := mvcc.NewStore(zap.NewNop(), be, le, mvcc.StoreConfig{})
		s.Close()
		le.Stop()
		be.Close()
		runtime.GC()
		b.StartTimer()
		ctx := context.Background()
		res, err := pitr.Replay(ctx, path, pitr.Fetch(ctx, read, segs, pitr.DefaultAhead), 1+revisions, pitr.ReplayOptions{})
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		secs := res.Took.Seconds()
		b.ReportMetric(float64(res.Revisions)/secs, "revisions/s")
		b.ReportMetric(float64(res.Bytes)/secs/1e6, "MB/s")
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MiB")
	}
}

// writeSegments writes revs as segments of per revisions to files in dir,
// each named by its SegmentName, and returns their names in order.
func writeSegments(b *testing.B, dir string, revs iter.Seq2[pitr.Revision, error], per int) []pitr.SegmentName {
	var segs []pitr.SegmentName
	var batch []pitr.Revision
	flush := func() {
		n := pitr.SegmentName{First: batch[0].Rev, Last: batch[len(batch)-1].Rev}
		f, err := os.Create(filepath.Join(dir, strconv.FormatInt(n.First, 10)))
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriter(f)
		if err := pitr.EncodeSegment(w, batch); err != nil {
			b.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		segs = append(segs, n)
		batch = batch[:0]
	}
	for r, err := range revs {
		if err != nil {
			b.Fatal(err)
		}
		if batch = append(batch, r); len(batch) == per {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	return segs
}

// synthetic yields n revisions from revision first on, as etcd would log
// them for the mix of BenchmarkReplay, over a key space of 200,000 keys.
func synthetic(first, n int64) iter.Seq2[pitr.Revision, error] {
	return func(yield func(pitr.Revision, error) bool) {
		type state struct{ create, version int64 }
		keys := map[string]*state{}
		var live []string
		rnd := rand.New(rand.NewPCG(1, 1))
		value := make([]byte, 256)
		put := func(rev int64, key string) *mvccpb.Event {
			st := keys[key]
			if st == nil {
				st = &state{create: rev}
				keys[key] = st
				live = append(live, key)
			}
			st.version++
			return &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(key), Value: value,
				CreateRevision: st.create, ModRevision: rev, Version: st.version}}
		}
		for rev := first; rev < first+n; rev++ {
			r := pitr.Revision{Rev: rev}
			switch op := rnd.IntN(100); {
			case op < 70 || len(live) < 100:
				r.Events = []*mvccpb.Event{put(rev, fmt.Sprintf("/registry/pods/ns-%03d/pod-%06d", rnd.IntN(100), rnd.IntN(200_000)))}
			case op < 85:
				i := rnd.IntN(len(live))
				key := live[i]
				live[i] = live[len(live)-1]
				live = live[:len(live)-1]
				delete(keys, key)
				r.Events = []*mvccpb.Event{{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}}}
			default:
				seen := map[string]bool{}
				for len(r.Events) < 3 {
					key := fmt.Sprintf("/registry/leases/ns-%03d/l-%06d", rnd.IntN(100), rnd.IntN(200_000))
					if !seen[key] {
						seen[key] = true
						r.Events = append(r.Events, put(rev, key))
					}
				}
			}
			if !yield(r, nil) {
				return
			}
		}
	}
}
