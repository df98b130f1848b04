package backup_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/objtest"
)

func TestMain(m *testing.M) { objtest.Main(m) }

// TestEveryBackend runs the same save, list, verify, fetch, prune, abort
// and corruption checks against every bucket backend, on real servers.
func TestEveryBackend(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	fill(t, c.Client(), "/registry/", 300, 3000)
	for _, b := range objtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			store := openStore(t, b.NewBucket(t))
			save := func(tag string, codec backup.Codec) *backup.Manifest {
				t.Helper()
				m, err := backup.Save(ctx, store, backup.SaveConfig{Endpoints: c.Endpoints(), Dial: dialer(t),
					CommandTimeout: 5 * time.Second, Tag: tag, Codec: codec})
				if err != nil {
					t.Fatal(err)
				}
				return m
			}
			plain := save("plain", backup.Codec{})
			zst := save("zst", backup.Codec{Compress: true})

			snaps, err := store.List(ctx, "", true)
			if err != nil || len(snaps) != 2 || !snaps[0].Complete() || !snaps[1].Complete() {
				t.Fatalf("list: %v %+v", err, snaps)
			}
			for _, m := range []*backup.Manifest{plain, zst} {
				snap, err := store.Find(ctx, "latest", m.Tag)
				if err != nil || snap.Key() != m.Name || snap.Manifest.Revision != m.Revision {
					t.Fatalf("latest of %s: %v %v", m.Tag, snap.Key(), err)
				}
				if _, err := backup.Verify(ctx, store, snap, backup.VerifyConfig{}); err != nil {
					t.Errorf("verify %s: %v", m.Name, err)
				}
				file := filepath.Join(t.TempDir(), "s.db")
				if err := backup.Fetch(ctx, store, snap, nil, file, false, nil); err != nil {
					t.Fatalf("fetch %s: %v", m.Name, err)
				}
				if rev, keys := etcdutlStatus(t, file); rev != m.Revision || keys != m.TotalKeys {
					t.Errorf("%s: etcdutl says %d/%d, manifest %d/%d", m.Name, rev, keys, m.Revision, m.TotalKeys)
				}
			}

			// A cancelled upload leaves nothing visible.
			actx, cancel := context.WithCancel(ctx)
			_, err = backup.Save(actx, store, backup.SaveConfig{Endpoints: c.Endpoints(), Dial: dialer(t), CommandTimeout: 5 * time.Second,
				Tag: "aborted", Progress: &cancelAfter{n: 256 << 10, cancel: cancel}})
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled save: %v", err)
			}
			if snaps, _ := store.List(ctx, "aborted", false); len(snaps) != 0 {
				t.Errorf("a cancelled upload is visible: %v", snaps)
			}

			// One flipped byte in a stored object: verify and fetch refuse it.
			data, err := store.Bucket().ReadAll(ctx, plain.Name)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/3] ^= 0x80
			if err := store.Bucket().WriteAll(ctx, plain.Name, data, nil); err != nil {
				t.Fatal(err)
			}
			snap, _ := store.Find(ctx, plain.Name, "")
			if _, err := backup.Verify(ctx, store, snap, backup.VerifyConfig{}); err == nil || !strings.Contains(err.Error(), "corrupt") {
				t.Errorf("verify of a corrupt object: %v", err)
			}
			if err := backup.Fetch(ctx, store, snap, nil, filepath.Join(t.TempDir(), "x.db"), false, nil); err == nil {
				t.Error("fetch of a corrupt object succeeded")
			}

			// Prune keeps the newest of each tag, from names alone: two older
			// complete "zst" snapshots go, the saved one stays.
			for _, age := range []time.Duration{time.Hour, 2 * time.Hour} {
				n := backup.Name{Tag: "zst", Time: zst.Time.Add(-age), Ext: ".db.zst"}
				for _, key := range []string{n.String(), n.Manifest()} {
					if err := store.Bucket().WriteAll(ctx, key, []byte("{}"), nil); err != nil {
						t.Fatal(err)
					}
				}
			}
			ds, err := backup.Prune(ctx, store, "zst", backup.Policy{Last: 1}, nil, time.Now(), false, nil)
			if err != nil || len(ds) != 3 {
				t.Fatalf("prune: %v %v", ds, err)
			}
			left, _ := store.List(ctx, "zst", false)
			if len(left) != 1 || left[0].Key() != zst.Name {
				t.Errorf("after prune: %v, want only %s", left, zst.Name)
			}
		})
	}
}
