package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/objtest"
)

func TestScheduleBadInput(t *testing.T) {
	bucket := "file://" + t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	config := func(yaml string) string {
		p := filepath.Join(t.TempDir(), "jobs.yaml")
		os.WriteFile(p, []byte(yaml), 0o600)
		return p
	}
	ep := "--endpoints=http://127.0.0.1:1"
	for _, tc := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"invalid spec", []string{ep, "--cron", "0 25 * * *", "--to", bucket}, `--cron: cron spec "0 25 * * *": end of range (25) above maximum (23): 25`, 2},
		{"invalid zone", []string{ep, "--cron", "CRON_TZ=Mars/Base @daily", "--to", bucket}, `--cron: cron spec "CRON_TZ=Mars/Base @daily": provided bad location Mars/Base`, 2},
		{"no cron", []string{ep, "--to", bucket}, "--cron: required (or --config FILE)", 2},
		{"no bucket", []string{ep, "--cron", "@hourly"}, "--to: required (or --config FILE)", 2},
		{"bad heartbeat", []string{ep, "--cron", "@hourly", "--to", bucket, "--heartbeat-url", "hc-ping.com/x"}, `--heartbeat-url: "hc-ping.com/x": expected an http:// or https:// URL`, 2},
		{"bad retention", []string{ep, "--cron", "@hourly", "--to", bucket, "--keep-last", "-2"}, `--keep-last "-2": expected a count of 0 or more`, 2},
		{"bad recipient", []string{ep, "--cron", "@hourly", "--to", bucket, "--age-recipient", "age1nope"}, `--age-recipient "age1nope"`, 2},
		{"bad catch-up", []string{ep, "--cron", "@hourly", "--to", bucket, "--catch-up", "all"}, `--catch-up: invalid value "all"`, 2},
		{"unknown config key", []string{"--config", config("jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', keep: 3}\n")}, `unknown field "keep"`, 2},
		{"job without bucket", []string{"--config", config("jobs:\n  - {name: a, cron: '@hourly'}\n")}, `job "a": to: missing`, 2},
		{"duplicate job", []string{"--config", config("jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', tag: x}\n  - {name: a, cron: '@hourly', to: 'mem://', tag: y}\n")}, `job "a": name: two jobs have this name`, 2},
		{"same tag and bucket", []string{"--config", config("jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', tag: x}\n  - {name: b, cron: '@hourly', to: 'mem://', tag: x}\n")}, `job "b": tag: job "a" already writes tag x`, 2},
		{"config and job flags", []string{"--config", config("jobs: []\n"), "--cron", "@hourly"}, "--cron: set in the jobs of --config", 2},
		{"metrics address taken", []string{ep, "--cron", "@hourly", "--to", bucket, "--catch-up", "none", "--metrics-addr", taken.Addr().String()}, "metrics address: listen tcp " + taken.Addr().String(), 1},
	} {
		_, errOut, code := runEtcdops(t, nil, append([]string{"schedule"}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		last := lines[len(lines)-1]
		if code != tc.code || !strings.Contains(last, tc.want) || !strings.HasPrefix(last, "etcdops: ") {
			t.Errorf("%s: exit %d, %q; want exit %d with one line holding %q", tc.name, code, errOut, tc.code, tc.want)
		}
	}
}

// TestScheduleSIGTERMAbortsUpload stops the daemon in the middle of an
// upload to a slow bucket: it exits 0 within seconds and nothing of the
// snapshot is visible. Its /metrics and /healthz answer before.
func TestScheduleSIGTERMAbortsUpload(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	val := strings.Repeat("x", 1<<10)
	for i := 0; i < 2048; i++ {
		etcdtest.Put(t, c.Client(), fmt.Sprintf("k%04d", i), val)
	}
	s3 := objtest.S3(t)
	bucket := s3.NewBucket(t)
	slow := objtest.Slow(t, bucket, 128<<10)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	cmd := exec.Command(etcdtest.EtcdopsBin(t), "schedule", "--endpoints="+c.Endpoints()[0], "--cron", "@hourly",
		"--to", slow.URL, "--tag", "prod", "--metrics-addr", addr, "--max-age", "1h")
	cmd.Env = append(os.Environ(), s3.Env...)
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()

	get := func(path string) (int, string, error) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	// The catch-up run (no snapshot yet) is uploading.
	etcdtest.Eventually(t, 30*time.Second, func() error {
		if slow.Uploading.Load() == 0 {
			return fmt.Errorf("no upload yet")
		}
		return nil
	})
	if code, body, err := get("/metrics"); err != nil || code != 200 || !strings.Contains(body, `etcdops_schedule_interval_seconds{backup_job="prod"} 3600`) {
		t.Errorf("/metrics: %d %v\n%s", code, err, body)
	}
	if code, body, err := get("/healthz"); err != nil || code != 503 || !strings.Contains(body, "job prod: no successful backup") {
		t.Errorf("/healthz: %d %v %q", code, err, body)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGTERM\n%s", errb.String())
	}
	if !strings.Contains(errb.String(), "run aborted by shutdown") {
		t.Errorf("the upload was not in progress at SIGTERM:\n%s", errb.String())
	}
	store, err := backup.OpenStore(t.Context(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if snaps, err := store.List(t.Context(), "", false); err != nil || len(snaps) != 0 {
		t.Errorf("bucket after an aborted upload: %v %v", snaps, err)
	}
}

// TestScheduleFailedRunSaysWhy: a run against a dead endpoint logs one
// line that says what was refused, with no Go stack trace in it.
func TestScheduleFailedRunSaysWhy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	cmd := exec.Command(etcdtest.EtcdopsBin(t), "schedule", "--endpoints", dead, "--command-timeout", "2s",
		"--cron", "@hourly", "--to", "file://"+t.TempDir(), "--tag", "t")
	var errb etcdtest.SyncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var failed string
	etcdtest.Eventually(t, 30*time.Second, func() error {
		for _, line := range strings.Split(errb.String(), "\n") {
			if strings.Contains(line, `"msg":"backup failed"`) {
				failed = line
				return nil
			}
		}
		return fmt.Errorf("no failed run logged yet")
	})
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if !strings.Contains(failed, "connection refused") || strings.Contains(failed, "stacktrace") || strings.Contains(failed, "goroutine") {
		t.Errorf("the failed run's line says %s; want what was refused and no stack trace", failed)
	}
}
