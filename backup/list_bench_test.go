package backup_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/etcdops/etcdops/backup"
)

// BenchmarkListAndRetention10k lists a file:// bucket of 10,000 snapshots
// (3 tags, with manifests) by name and applies a retention policy to them,
// as `backup prune` does. Goal: well under a second.
func BenchmarkListAndRetention10k(b *testing.B) {
	ctx := context.Background()
	store, err := backup.OpenStore(ctx, "file://"+b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	// Written through the bucket, so fileblob keeps its attribute files
	// beside each object as it does for real snapshots.
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 10000; i++ {
		n := backup.Name{Tag: fmt.Sprintf("etcd-%d", i%3), Time: start.Add(time.Duration(i) * 10 * time.Minute), Ext: ".db.zst"}
		for _, name := range []string{n.String(), n.Manifest()} {
			if err := store.Bucket().WriteAll(ctx, name, []byte("{}"), nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	policy := backup.Policy{Last: 10, Hourly: 48, Daily: 30, Weekly: 12, Monthly: 24}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		snaps, err := store.List(ctx, "", false)
		if err != nil {
			b.Fatal(err)
		}
		ds, err := backup.ApplyPolicy(snaps, policy, start.Add(10000*10*time.Minute))
		if err != nil || len(ds) != 10000 {
			b.Fatalf("%d decisions, %v", len(ds), err)
		}
	}
}
