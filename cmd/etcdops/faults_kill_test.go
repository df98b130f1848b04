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
	env, proxied, p := viaProxy(t, be, bucket, pause, false, 4<<20)
	dir := t.TempDir()
	dst := filepath.Join(dir, "s.db")
	cmd := startEtcdops(t, env, "backup", "fetch", "--from", proxied, "latest", "--to", dst)
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

// memberKilledMidStream kills the member that `backup save` streams from
// (an `etcdops serve` process) once 3 MiB went through a proxy.
func memberKilledMidStream(backendName string) func(t *testing.T, _ *faultFixture) {
	return func(t *testing.T, _ *faultFixture) {
		c := etcdtest.StartServeCluster(t, 1, "--unsafe-no-fsync") // not a durability test
		fillMiB(t, c.Endpoints(), 10)
		be := backend(t, backendName)
		bucket := be.NewBucket(t)
		p := startProxy(t, etcdtest.HostPort(t, c.Endpoints()[0]), pause, false, 3<<20)
		cmd := startEtcdops(t, be.Env, "backup", "save", "--endpoints", "http://"+p.Addr, "--to", bucket)
		p.WaitFired(t, time.Minute)
		c.Procs[0].Kill(t)
		p.Release()
		waitFails(t, cmd, time.Minute)
		assertNoSnapshots(t, be.Env, bucket)
		if keys := bucketKeys(t, bucket); be.Name != "file" && len(keys) > 0 {
			t.Errorf("the failed save left %v in the bucket", keys)
		}
	}
}

// leaderChangeMidStream moves the leadership to the follower that `backup
// save` streams from once 3 MiB went through a proxy; the save completes.
func leaderChangeMidStream(backendName string) func(t *testing.T, _ *faultFixture) {
	return func(t *testing.T, _ *faultFixture) {
		c := etcdtest.StartEmbedded(t, 3)
		eps := c.Endpoints()
		fillMiB(t, eps, 10)
		leader := leaderIndex(t, eps)
		source := (leader + 1) % len(eps)
		be := backend(t, backendName)
		bucket := be.NewBucket(t)
		p := startProxy(t, etcdtest.HostPort(t, eps[source]), pause, false, 3<<20)
		cmd := startEtcdops(t, be.Env, "backup", "save", "--endpoints", "http://"+p.Addr, "--to", bucket)
		p.WaitFired(t, time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		target := c.Members[source].Etcd.Server.MemberID()
		if _, err := etcdtest.NewClient(t, eps[leader]).MoveLeader(ctx, uint64(target)); err != nil {
			t.Fatalf("move leader: %v", err)
		}
		if got := leaderIndex(t, eps); got != source {
			t.Fatalf("leader is member %d after the move, want %d", got, source)
		}
		p.Release()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("save across a leader change: %v\n%s", err, cmd.Stderr)
		}
		if _, stderr, code := runEtcdops(t, be.Env, "backup", "verify", "--from", bucket, "latest"); code != 0 {
			t.Errorf("verify: exit %d: %s", code, stderr)
		}
	}
}
