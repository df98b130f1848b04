package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/objtest"
	"github.com/etcdops/etcdops/schedule"
)

// TestServeBackupCronOneSnapshotPerSlot runs three `serve --backup-cron
// "@every 1s"` members over more than ten slots and kills the leader in
// the middle: every slot has exactly one snapshot, taken by the member
// that claimed it; no upload was overwritten by another; at most the slot
// in flight during the kill is missing.
func TestServeBackupCronOneSnapshotPerSlot(t *testing.T) {
	bucket := objtest.S3(t).NewBucket(t)
	c := etcdtest.StartServeCluster(t, 3, "--backup-cron", "@every 1s", "--backup-to", bucket)
	cli := etcdtest.NewClient(t, c.Endpoints()...)
	etcdtest.Put(t, cli, "k", "v")
	store, err := backup.OpenStore(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	complete := func() ([]backup.Snapshot, error) {
		snaps, err := store.List(context.Background(), "", true)
		var out []backup.Snapshot
		for _, s := range snaps {
			if s.Complete() {
				out = append(out, s)
			}
		}
		return out, err
	}
	waitFor := func(n int) {
		etcdtest.Eventually(t, 90*time.Second, func() error {
			snaps, err := complete()
			if err != nil || len(snaps) < n {
				return fmt.Errorf("%d snapshots: %v", len(snaps), err)
			}
			return nil
		})
	}
	waitFor(5)
	leader := findLeader(t, cli, c)
	leader.Kill(t)
	snaps, _ := complete()
	waitFor(len(snaps) + 7)

	// Every member exports the cluster's last success, whichever member
	// took the slot: at least the newest snapshot seen here.
	snaps, _ = complete()
	newest := snaps[len(snaps)-1].Name.Time
	for _, s := range snaps {
		if s.Name.Time.After(newest) {
			newest = s.Name.Time
		}
	}
	for _, p := range c.Procs {
		if p == leader {
			continue
		}
		etcdtest.Eventually(t, 30*time.Second, func() error {
			last, err := lastSuccess(p.Spec.ClientURL)
			if err != nil || last.Before(newest) {
				return fmt.Errorf("%s exports last success %v (%v); the bucket holds %v", p.Spec.Name, last, err, newest)
			}
			return nil
		})
	}

	// Claims still held say who took each slot.
	claims := map[string]string{}
	resp, err := cli.Get(context.Background(), schedule.ClaimPrefix, clientv3WithPrefix()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		claims[strings.TrimPrefix(string(kv.Key), schedule.ClaimPrefix)] = string(kv.Value)
	}
	for _, p := range c.Procs {
		if p != leader {
			p.Signal(t, syscall.SIGTERM)
			if code := p.Wait(t, 30*time.Second); code != 0 {
				t.Errorf("%s exit %d after SIGTERM\n%s", p.Spec.Name, code, p.Output())
			}
		}
	}

	snaps, err = complete()
	if err != nil {
		t.Fatal(err)
	}
	// Every upload a member finished is one object: none overwrote another.
	uploads := map[string][]string{}
	for _, p := range c.Procs {
		for _, line := range strings.Split(p.Output(), "\n") {
			var e struct {
				Msg  string `json:"msg"`
				Name string `json:"name"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "backup done" {
				uploads[e.Name] = append(uploads[e.Name], p.Spec.Name)
			}
		}
	}
	tag := ""
	var times []time.Time
	for _, s := range snaps {
		if tag == "" {
			tag = s.Name.Tag
		}
		if s.Name.Tag != tag || !strings.HasPrefix(tag, "cluster-") {
			t.Errorf("%s: tags %s and %s; want one cluster-wide tag", s.Key(), tag, s.Name.Tag)
		}
		if by := uploads[s.Key()]; len(by) != 1 || by[0] != s.Manifest.MemberName {
			t.Errorf("%s: uploaded by %v, manifest says %s", s.Key(), by, s.Manifest.MemberName)
		}
		slot := tag + "/" + s.Name.Time.Format(backup.TimeLayout)
		if who, ok := claims[slot]; ok && who != s.Manifest.MemberName {
			t.Errorf("%s: claimed by %s, taken by %s", s.Key(), who, s.Manifest.MemberName)
		}
		times = append(times, s.Name.Time)
	}
	if len(uploads) != len(snaps) {
		t.Errorf("%d uploads finished, %d snapshots in the bucket", len(uploads), len(snaps))
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	missing := 0
	for i := 1; i < len(times); i++ {
		missing += int(times[i].Sub(times[i-1])/time.Second) - 1
	}
	slots := int(times[len(times)-1].Sub(times[0])/time.Second) + 1
	t.Logf("%d snapshots over %d slots, %d missing; leader %s killed", len(snaps), slots, missing, leader.Spec.Name)
	if slots < 10 || missing > 1 {
		for _, tm := range times {
			t.Log(tm.Format(time.TimeOnly))
		}
		for _, p := range c.Procs {
			for _, line := range strings.Split(p.Output(), "\n") {
				if strings.Contains(line, `"logger":"backup`) && !strings.Contains(line, "next run") && !strings.Contains(line, "snapshot") {
					t.Log(p.Spec.Name, line)
				}
			}
		}
		t.Errorf("%d slots with %d missing; want ≥ 10 slots and at most the one in flight at the kill missing", slots, missing)
	}
}

// lastSuccess reads etcdops_schedule_last_success_timestamp_seconds from
// a member's /metrics.
func lastSuccess(clientURL string) (time.Time, error) {
	resp, err := http.Get(clientURL + "/metrics")
	if err != nil {
		return time.Time{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return time.Time{}, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, `etcdops_schedule_last_success_timestamp_seconds{backup_job="backup"} `); ok {
			f, err := strconv.ParseFloat(v, 64)
			return time.Unix(int64(math.Round(f)), 0).UTC(), err // slots are whole seconds
		}
	}
	return time.Time{}, fmt.Errorf("no last success in /metrics")
}

func clientv3WithPrefix() []clientv3.OpOption { return []clientv3.OpOption{clientv3.WithPrefix()} }

func TestServeBackupBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		file string
		want string
	}{
		{"bad spec", []string{"--backup-cron", "0 25 * * *", "--backup-to", "mem://"}, nil, "", `--backup-cron: cron spec "0 25 * * *": end of range (25) above maximum (23): 25`},
		{"no cron", []string{"--backup-to", "mem://"}, nil, "", "--backup-cron: required with the other backup settings (--backup-to)"},
		{"no bucket", []string{"--backup-cron", "@hourly"}, nil, "", "--backup-to: missing: every job needs a bucket URL"},
		{"bad count in env", []string{"--backup-cron", "@hourly", "--backup-to", "mem://"}, []string{"ETCDOPS_BACKUP_KEEP_LAST=many"}, "",
			`ETCDOPS_BACKUP_KEEP_LAST: invalid value "many", expected a count of 0 or more`},
		{"bad zone in config file", nil, nil, "name: a\nbackup-cron: CRON_TZ=Atlantis/Capital @daily\nbackup-to: mem://\n",
			`config file key backup-cron: cron spec "CRON_TZ=Atlantis/Capital @daily": provided bad location Atlantis/Capital`},
		{"bad tag", []string{"--backup-cron", "@hourly", "--backup-to", "mem://", "--backup-tag", "a_b"}, nil, "", `--backup-tag: "a_b": expected letters`},
		{"password in the user", []string{"--backup-cron", "@hourly", "--backup-to", "mem://", "--backup-user", "root:pw"}, nil, "",
			"--backup-user: expected a user name without ':'; give the password in ETCDOPS_BACKUP_PASSWORD or the config file key backup-password"},
		{"password without user", []string{"--backup-cron", "@hourly", "--backup-to", "mem://"}, []string{"ETCDOPS_BACKUP_PASSWORD=pw"}, "",
			"ETCDOPS_BACKUP_PASSWORD: given without a user (--backup-user)"},
		{"bad stall timeout", []string{"--backup-cron", "@hourly", "--backup-to", "mem://", "--backup-stall-timeout", "0s"}, nil, "",
			`--backup-stall-timeout: invalid value "0s", expected a positive duration`},
		{"password as a flag", []string{"--backup-cron", "@hourly", "--backup-to", "mem://", "--backup-user", "root", "--backup-password", "pw"}, nil, "",
			"unknown flag --backup-password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"serve"}, tc.args...)
			if tc.file != "" {
				os.WriteFile(filepath.Join(dir, "c.yml"), []byte(tc.file), 0o600)
				args = append(args, "--config-file=c.yml")
			}
			cmd := exec.Command(etcdtest.EtcdopsBin(t), args...)
			cmd.Dir, cmd.Env = dir, append(os.Environ(), tc.env...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			cmd.Run()
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if code := cmd.ProcessState.ExitCode(); code != exitUsage || !strings.Contains(lines[len(lines)-1], tc.want) {
				t.Errorf("exit %d, %q; want exit 2 with %q", code, stderr.String(), tc.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 1 {
				t.Errorf("bad input left %v", entries)
			}
		})
	}
}

// TestServeBackupKeysInConfigFile: the backup-* keys sit in etcd's config
// file, which stock etcd still reads, and serve takes backups from them.
func TestServeBackupKeysInConfigFile(t *testing.T) {
	bucketDir := t.TempDir()
	for _, tool := range []string{"stock etcd", "etcdops serve"} {
		spec := etcdtest.Specs(t, 1, t.TempDir())[0]
		conf := filepath.Join(t.TempDir(), "etcd.yml")
		os.WriteFile(conf, []byte(fmt.Sprintf("name: %s\ndata-dir: %s\nlisten-client-urls: %s\nadvertise-client-urls: %s\n"+
			"listen-peer-urls: %s\ninitial-advertise-peer-urls: %s\ninitial-cluster: %s\n"+
			"backup-cron: '@every 1s'\nbackup-to: file://%s\nbackup-keep-last: 2\nbackup-compress: true\n",
			spec.Name, spec.DataDir, spec.ClientURL, spec.ClientURL, spec.PeerURL, spec.PeerURL, spec.InitialCluster, bucketDir)), 0o600)
		p := &etcdtest.Process{Spec: spec, Binary: etcdtest.EtcdopsBin(t), Command: []string{"serve", "--config-file", conf}}
		if tool == "stock etcd" {
			p.Binary, p.Command = etcdtest.Tool(t, "etcd"), []string{"--config-file", conf}
		}
		p.StartRaw(t)
		p.WaitHealthy(t, 30*time.Second)
		if tool == "stock etcd" {
			p.Kill(t)
			continue
		}
		etcdtest.Eventually(t, 30*time.Second, func() error {
			entries, _ := os.ReadDir(bucketDir)
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), ".db.zst.json") && strings.HasPrefix(e.Name(), "cluster-") {
					return nil
				}
			}
			return fmt.Errorf("no compressed snapshot of the cluster tag yet: %v", entries)
		})
		// The schedule's metrics are on the member's own /metrics.
		etcdtest.Eventually(t, 10*time.Second, func() error {
			resp, err := http.Get(spec.ClientURL + "/metrics")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if !regexp.MustCompile(`(?m)^etcdops_schedule_runs_total\{backup_job="backup",result="success"\} [1-9]`).Match(b) {
				return fmt.Errorf("no successful run counted on the member's /metrics")
			}
			return nil
		})
		p.Signal(t, syscall.SIGTERM)
		if code := p.Wait(t, 30*time.Second); code != 0 {
			t.Fatalf("exit %d\n%s", code, p.Output())
		}
		checkLogs(t, p.Output())
	}
}
