package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdtest"
)

// TestServeBackupAuth: a member schedules its own backups in a cluster
// whose auth is turned on after it started. With user and password (the
// password from the environment) and with client-certificate auth (the
// member's --client-cert-file names the user), the slots after that are
// still claimed and uploaded; the password shows in no log line.
func TestServeBackupAuth(t *testing.T) {
	t.Run("user and password", func(t *testing.T) {
		const password = "backup-pw-7f3a91"
		t.Setenv("ETCDOPS_BACKUP_PASSWORD", password)
		bucket := "file://" + t.TempDir()
		c := etcdtest.StartServeCluster(t, 1, "--backup-cron", "@every 1s", "--backup-to", bucket, "--backup-user", "root")
		etcdtest.EnableAuth(t, etcdtest.NewClient(t, c.Endpoints()...), password)
		p := c.Procs[0]
		waitSnapshotAfter(t, bucket, time.Now(), p)
		stopMember(t, p)
		if strings.Contains(p.Output(), password) {
			t.Error("the backup password is in the member's log")
		}
	})

	t.Run("client certificate", func(t *testing.T) {
		ca := etcdtest.NewCA(t)
		specs := etcdtest.WithTLS(t, etcdtest.Specs(t, 1, t.TempDir()), ca)
		// The member's own certificate is issued to m0, no etcd user; its
		// client certificate is issued to root, the user etcd sees.
		root := ca.Issue(t, "root")
		bucket := "file://" + t.TempDir()
		specs[0].Extra = []string{"--client-cert-file=" + root.CertFile, "--client-key-file=" + root.KeyFile,
			"--backup-cron", "@every 1s", "--backup-to", bucket}
		c := etcdtest.StartProcesses(t, specs, etcdtest.EtcdopsBin(t), "serve")
		files := &etcdtest.TLSFiles{CAFile: ca.CertFile, CertFile: root.CertFile, KeyFile: root.KeyFile}
		etcdtest.EnableAuth(t, etcdtest.NewTLSClient(t, files, c.Endpoints()...), "unused-root-pw")
		p := c.Procs[0]
		waitSnapshotAfter(t, bucket, time.Now(), p)
		stopMember(t, p)
	})
}

// waitSnapshotAfter waits until bucket holds a complete snapshot of a slot
// after since.
func waitSnapshotAfter(t *testing.T, bucket string, since time.Time, p *etcdtest.Process) {
	t.Helper()
	store, err := backup.OpenStore(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	etcdtest.Eventually(t, 60*time.Second, func() error {
		snaps, err := store.List(context.Background(), "", false)
		if err != nil {
			return err
		}
		for _, s := range snaps {
			if s.Complete() && s.Name.Time.After(since) {
				return nil
			}
		}
		return fmt.Errorf("no snapshot of a slot after %s among %d\n%s", since.Format(time.TimeOnly), len(snaps), tail(p.Output(), 5))
	})
}

func stopMember(t *testing.T, p *etcdtest.Process) {
	t.Helper()
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.Output())
	}
	checkLogs(t, p.Output())
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
