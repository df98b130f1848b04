package backup_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdtest"
)

func TestShouldPrune(t *testing.T) {
	keep := backup.Policy{Last: 2}
	for _, tc := range []struct {
		name    string
		saveErr error
		policy  backup.Policy
		want    bool
	}{
		{"saved, with a rule", nil, keep, true},
		{"saved, no rule", nil, backup.Policy{}, false},
		{"save failed", errors.New("stream: connection reset"), keep, false},
		{"save failed, no rule", errors.New("x"), backup.Policy{}, false},
	} {
		if got := backup.ShouldPrune(tc.saveErr, tc.policy); got != tc.want {
			t.Errorf("%s: ShouldPrune = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// touch writes an empty snapshot (and its manifest when complete) as an
// older run of tag would have left it.
func touch(t *testing.T, dir, name string, complete bool) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if complete {
		if err := os.WriteFile(filepath.Join(dir, name+".json"), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func exists(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}

func TestBackupSavesThenPrunes(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 3)
	etcdtest.Put(t, c.Client(), "k", "v")
	slot := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	cfg := func(endpoints []string, at time.Time) backup.SaveConfig {
		return backup.SaveConfig{Endpoints: endpoints, Dial: dialer(t), CommandTimeout: 5 * time.Second, At: at,
			Now: func() time.Time { return slot.Add(3 * time.Second) }}
	}
	ctx := context.Background()

	t.Run("several endpoints: cluster tag, named after the slot, older ones pruned", func(t *testing.T) {
		url, dir := fileBucket(t)
		store := openStore(t, url)
		res, err := backup.Backup(ctx, store, cfg(c.Endpoints(), slot), backup.Policy{Last: 1})
		if err != nil {
			t.Fatal(err)
		}
		m := res.Manifest
		clusterTag := "cluster-" + m.ClusterID
		if m.Tag != clusterTag || m.Name != clusterTag+"_2026-11-30_10-00-00.db" {
			t.Fatalf("saved %s with tag %s, want %s_2026-11-30_10-00-00.db", m.Name, m.Tag, clusterTag)
		}
		touch(t, dir, clusterTag+"_2026-11-30_09-00-00.db", true)
		touch(t, dir, "other_2026-11-30_09-00-00.db", true)
		res, err = backup.Backup(ctx, store, cfg(c.Endpoints(), slot.Add(time.Hour)), backup.Policy{Last: 1})
		if err != nil || res.PruneErr != nil || res.Pruned != 2 {
			t.Fatalf("second backup: %v, %+v; want 2 pruned", err, res)
		}
		if exists(dir, m.Name) || exists(dir, clusterTag+"_2026-11-30_09-00-00.db") || !exists(dir, "other_2026-11-30_09-00-00.db") {
			t.Error("retention did not remove exactly the older snapshots of the job's tag")
		}
	})

	t.Run("one endpoint: the member's name", func(t *testing.T) {
		url, _ := fileBucket(t)
		res, err := backup.Backup(ctx, openStore(t, url), cfg(c.Endpoints()[:1], time.Time{}), backup.Policy{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Manifest.Tag != backup.SafeTag(res.Manifest.MemberName) || res.Pruned != 0 {
			t.Errorf("tag %s of member %s, %d pruned", res.Manifest.Tag, res.Manifest.MemberName, res.Pruned)
		}
	})

	t.Run("a prune failure does not fail the backup, nor counts as pruned", func(t *testing.T) {
		url, dir := fileBucket(t)
		// An old incomplete upload whose manifest name is taken by a
		// non-empty directory: removing it fails. An old complete
		// snapshot beside it is removed.
		touch(t, dir, "job_2026-11-29_00-00-00.db", false)
		if err := os.MkdirAll(filepath.Join(dir, "job_2026-11-29_00-00-00.db.json", "x"), 0o700); err != nil {
			t.Fatal(err)
		}
		touch(t, dir, "job_2026-11-28_00-00-00.db", true)
		c := cfg(c.Endpoints(), slot)
		c.Tag = "job"
		res, err := backup.Backup(ctx, openStore(t, url), c, backup.Policy{Last: 1})
		if err != nil || res.Manifest == nil || res.PruneErr == nil {
			t.Fatalf("backup = %+v, %v; want saved with a retention error", res, err)
		}
		if !exists(dir, res.Manifest.Name+".json") {
			t.Error("the snapshot's manifest is missing")
		}
		if exists(dir, "job_2026-11-28_00-00-00.db") || !exists(dir, "job_2026-11-29_00-00-00.db") {
			t.Error("retention did not remove the old complete snapshot, or removed the one it failed on")
		}
		if res.Pruned != 1 {
			t.Errorf("pruned %d, want 1: the removal that failed is not counted", res.Pruned)
		}
	})

	t.Run("never prune after a failed save", func(t *testing.T) {
		url, dir := fileBucket(t)
		touch(t, dir, "job_2026-11-01_00-00-00.db", true)
		touch(t, dir, "job_2026-11-02_00-00-00.db", true)
		c := cfg([]string{"http://127.0.0.1:1"}, slot)
		c.Tag, c.CommandTimeout = "job", time.Second
		if _, err := backup.Backup(ctx, openStore(t, url), c, backup.Policy{Last: 1}); err == nil {
			t.Fatal("backup from a dead endpoint succeeded")
		}
		if !exists(dir, "job_2026-11-01_00-00-00.db") {
			t.Error("retention ran after a failed save")
		}
	})
}
