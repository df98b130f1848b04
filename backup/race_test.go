package backup_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/objtest"
)

// barrier holds every stream at its first read until n streams have begun: by then every save
// has found its name free, and they race to the write.
type barrier struct {
	wg sync.WaitGroup
}

func (b *barrier) Wrap(r io.Reader, total int64) io.Reader {
	var once sync.Once
	return readerFunc(func(p []byte) (int, error) {
		once.Do(func() { b.wg.Done(); b.wg.Wait() })
		return r.Read(p)
	})
}
func (b *barrier) Done() {}

// TestSavesRacingForOneNameKeepOne runs two saves of two different clusters under one tag and one
// second, on every backend, each through its own Store as two processes would (mem:// buckets live
// in one Store): one wins, the other fails with ErrNameTaken, and what the bucket holds is the
// winner's snapshot with the winner's manifest.
func TestSavesRacingForOneNameKeepOne(t *testing.T) {
	clusters := []*etcdtest.EmbeddedCluster{etcdtest.StartEmbedded(t, 1), etcdtest.StartEmbedded(t, 1)}
	for i, c := range clusters {
		fill(t, c.Client(), "/k/", 90+10*i, 100_000) // over one 8 MiB part: multipart uploads race too
	}
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	for _, b := range objtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			url := b.NewBucket(t)
			first := openStore(t, url)
			stores := []*backup.Store{first, first}
			if !strings.HasPrefix(url, "mem:") {
				stores[1] = openStore(t, url)
			}
			bar := &barrier{}
			bar.wg.Add(2)
			var wg sync.WaitGroup
			ms := make([]*backup.Manifest, 2)
			errs := make([]error, 2)
			for i := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ms[i], errs[i] = backup.Save(ctx, stores[i], backup.SaveConfig{Endpoints: clusters[i].Endpoints(), Dial: dialer(t),
						CommandTimeout: 5 * time.Second, Tag: "race", Progress: bar, Now: func() time.Time { return at }})
				}()
			}
			wg.Wait()
			win := 0
			if errs[0] != nil {
				win = 1
			}
			lose := 1 - win
			if errs[win] != nil || !errors.Is(errs[lose], backup.ErrNameTaken) {
				t.Fatalf("saves: %v and %v, want one success and one ErrNameTaken", errs[0], errs[1])
			}
			snaps, err := first.List(ctx, "", true)
			if err != nil || len(snaps) != 1 || !snaps[0].Complete() {
				t.Fatalf("list: %v %+v, want one complete snapshot", err, snaps)
			}
			if got := snaps[0].Manifest; got.RawSHA256 != ms[win].RawSHA256 || got.ClusterID != ms[win].ClusterID {
				t.Errorf("stored manifest is of cluster %s, the winner is %s", got.ClusterID, ms[win].ClusterID)
			}
			if _, err := backup.Verify(ctx, first, snaps[0], backup.VerifyConfig{}); err != nil {
				t.Errorf("the winner's snapshot: %v", err)
			}
		})
	}
}
