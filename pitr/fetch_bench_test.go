package pitr_test

import (
	"context"
	"testing"
	"time"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/objtest"
	"github.com/etcdops/etcdops/pitr"
)

func TestMain(m *testing.M) { objtest.Main(m) }

// BenchmarkFetchRemote reads a log of 400 segments of 1,000 revisions
// (256-byte values; one second each at 1,000 writes/s) from MinIO behind a
// proxy that holds each request 20 ms, as a remote object store's first
// byte takes, with restore's read-ahead (DefaultAhead) and with the fixed
// 4 segments it had before. It reports segments/s and revisions/s.
//
//	scripts/test.sh -run XXX -bench BenchmarkFetchRemote -benchtime 3x ./pitr/
func BenchmarkFetchRemote(b *testing.B) {
	const segments, perSegment, rtt = 400, 1_000, 20 * time.Millisecond
	ctx := context.Background()
	direct := objtest.S3(b).NewBucket(b)
	store, err := backup.OpenStore(ctx, direct)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	var segs []pitr.SegmentName
	var batch []pitr.Revision
	for rev, err := range synthetic(2, segments*perSegment) {
		if err != nil {
			b.Fatal(err)
		}
		if batch = append(batch, rev); len(batch) == perSegment {
			n, _, _, err := pitr.WriteSegment(ctx, store, "t", backup.Codec{}, batch)
			if err != nil {
				b.Fatal(err)
			}
			segs, batch = append(segs, n), nil
		}
	}
	remote, err := backup.OpenStore(ctx, objtest.Latent(b, direct, rtt))
	if err != nil {
		b.Fatal(err)
	}
	defer remote.Close()
	read := pitr.Reader(remote, nil)
	for _, tc := range []struct {
		name  string
		ahead pitr.Ahead
	}{
		{"ahead=4", pitr.Ahead{Min: 4, Max: 4}},
		{"ahead=default", pitr.DefaultAhead},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				n := 0
				for _, err := range pitr.Fetch(ctx, read, segs, tc.ahead) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != segments*perSegment {
					b.Fatalf("%d revisions, want %d", n, segments*perSegment)
				}
			}
			s := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(segments/s, "segments/s")
			b.ReportMetric(segments*perSegment/s, "revisions/s")
		})
	}
}
