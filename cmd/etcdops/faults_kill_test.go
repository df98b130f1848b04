package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/objtest"
)

// fetchKilled kills `backup fetch` with SIGKILL while it downloads from
// MinIO (a proxy pauses the download after 4 MiB), then fetches again.
func fetchKilled(t *testing.T, fx *faultFixture) {
	be := objtest.S3(t)
	bucket := be.NewBucket(t)
	out, stderr, code := runEtcdops(t, be.Env, "backup", "save", "--endpoints", fx.endpoint, "--to", bucket, "-w", "json")
	if code != 0 {
		t.Fatalf("save: %s", stderr)
	}
	var m struct{ Revision int64 }
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, minioTarget(t, bucket), pause, false, 4<<20)
	dir := t.TempDir()
	dst := filepath.Join(dir, "s.db")
	cmd := startEtcdops(t, be.Env, "backup", "fetch", "--from", throughProxy(t, bucket, p), "latest", "--to", dst)
	p.WaitFired(t, time.Minute)
	cmd.Process.Kill()
	cmd.Wait()
	p.Release()
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("a killed fetch left %s: %v", dst, err)
	}

	if _, stderr, code := runEtcdops(t, be.Env, "backup", "fetch", "--from", bucket, "latest", "--to", dst); code != 0 {
		t.Fatalf("fetch after the killed one: exit %d: %s", code, stderr)
	}
	if got := list(t, dir); !slices.Equal(got, []string{"s.db"}) {
		t.Errorf("after the rerun the directory holds %v", got)
	}
	st, err := exec.Command(etcdtest.Tool(t, "etcdutl"), "snapshot", "status", dst, "-w", "json").Output()
	var status struct{ Revision int64 }
	if err != nil || json.Unmarshal(st, &status) != nil || status.Revision != m.Revision {
		t.Errorf("etcdutl snapshot status of the fetched file: %v %s; want revision %d", err, st, m.Revision)
	}
}

// serveKilled kills the leader of an n-member `etcdops serve` cluster (real
// fsync) with SIGKILL under a write load, restarts it, and checks that
// every acknowledged write reads back, also through the restarted member.
func serveKilled(n int) func(t *testing.T, _ *faultFixture) {
	return func(t *testing.T, _ *faultFixture) {
		c := etcdtest.StartServeCluster(t, n)
		w := etcdtest.StartWriter(t, c.Endpoints(), etcdtest.WriterConfig{Rate: 300, Duration: 2 * time.Minute, ValueSize: 256})
		acked := func(min int) func() error {
			return func() error {
				if s := w.Stats(); s.Acked < min {
					return fmt.Errorf("%d writes acknowledged, waiting for %d", s.Acked, min)
				}
				return nil
			}
		}
		etcdtest.Eventually(t, 30*time.Second, acked(300))
		victim := c.Procs[leaderIndex(t, c.Endpoints())]
		victim.Kill(t)
		before := w.Stats().Acked
		if n > 1 {
			// The others go on taking writes.
			etcdtest.Eventually(t, 30*time.Second, acked(before+300))
		}
		victim.Start(t)
		victim.WaitHealthy(t, time.Minute)
		etcdtest.Eventually(t, 30*time.Second, acked(w.Stats().Acked+100))
		stats := w.Stop()
		t.Logf("writer: %v", stats)
		w.Check(t, c.Endpoints())
		w.Check(t, []string{victim.Spec.ClientURL})
	}
}

// leaderIndex returns the index in endpoints of the leader's.
func leaderIndex(t *testing.T, endpoints []string) int {
	t.Helper()
	cli := etcdtest.NewClient(t, endpoints...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, ep := range endpoints {
		st, err := cli.Status(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		if st.Header.MemberId == st.Leader {
			return i
		}
	}
	t.Fatalf("no leader among %v", endpoints)
	return -1
}
