package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/objtest"
)

// runEtcdops runs the etcdops binary and returns stdout, stderr and the exit code.
func runEtcdops(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	return runIn(t, "", env, args...)
}

// runIn is runEtcdops in the working directory dir.
func runIn(t *testing.T, dir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(etcdtest.EtcdopsBin(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Run()
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

func TestBackupCronWithRetention(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	etcdtest.Put(t, c.Client(), "k", "v")
	dir := t.TempDir()
	bucket := "file://" + dir + "?prefix=cluster-a/"
	ep := "--endpoints=" + c.Endpoints()[0]
	var names []string
	for i := 0; i < 3; i++ {
		// One per second at most: names carry the time to the second.
		etcdtest.Eventually(t, 5*time.Second, func() error {
			out, errOut, code := runEtcdops(t, nil, "backup", "save", ep, "--to", bucket, "--tag", "etcd-1", "--compress", "--keep-last", "2")
			if code != 0 {
				return etcdtest.Stop(errorf("save exit %d: %s", code, errOut))
			}
			names = append(names, strings.Fields(out)[1])
			return nil
		})
		if i < 2 {
			waitNextSecond()
		}
	}
	out, errOut, code := runEtcdops(t, nil, "backup", "list", "--from", bucket, "-w", "json")
	if code != 0 {
		t.Fatalf("list: %s", errOut)
	}
	if strings.Contains(out, names[0]) || !strings.Contains(out, names[1]) || !strings.Contains(out, names[2]) {
		t.Errorf("after three saves with --keep-last 2, list shows:\n%s\nwant %v", out, names[1:])
	}
	if _, err := os.Stat(filepath.Join(dir, "cluster-a", names[2])); err != nil {
		t.Errorf("snapshot not under the prefix: %v", err)
	}
	// Prune dry run explains itself and removes nothing.
	out, _, code = runEtcdops(t, nil, "backup", "prune", "--from", bucket, "--keep-last", "1", "--dry-run")
	if code != 0 || !strings.Contains(out, "would remove\t") && !strings.Contains(out, "would remove ") {
		t.Errorf("prune --dry-run: exit %d\n%s", code, out)
	}
	out, _, code = runEtcdops(t, nil, "backup", "verify", "--from", bucket, "latest")
	if code != 0 || !strings.Contains(out, "verified "+names[2]) {
		t.Errorf("verify latest: exit %d %s", code, out)
	}
}

func TestBackupBadInput(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	ep := "--endpoints=" + c.Endpoints()[0]
	dir := t.TempDir()
	bucket := "file://" + dir
	existing := filepath.Join(t.TempDir(), "exists.db")
	os.WriteFile(existing, []byte("x"), 0o600)
	tests := []struct {
		name string
		args []string
		env  []string
		want string
		code int
	}{
		{"unknown scheme", []string{"backup", "save", ep, "--to", "ftp://b"}, nil, `--to "ftp://b": unknown scheme "ftp"`, 2},
		{"missing bucket", []string{"backup", "save", ep, "--to", "file://" + filepath.Join(dir, "nope")}, nil, "no such bucket", 2},
		{"unreachable endpoint", []string{"backup", "save", "--endpoints=127.0.0.1:1", "--dial-timeout=300ms", "--command-timeout=500ms", "--to", bucket}, nil, "127.0.0.1:1", 1},
		{"malformed endpoint", []string{"backup", "save", "--endpoints=ftp://x:1", "--to", bucket}, nil, "--endpoints", 2},
		{"negative retention", []string{"backup", "save", ep, "--to", bucket, "--keep-daily", "-1"}, nil, "--keep-daily", 2},
		{"bad age recipient", []string{"backup", "save", ep, "--to", bucket, "--age-recipient", "age1bogus"}, nil, "--age-recipient", 2},
		{"bad tag", []string{"backup", "save", ep, "--to", bucket, "--tag", "a/b"}, nil, `--tag "a/b"`, 2},
		{"retention not a number", []string{"backup", "save", ep, "--to", bucket, "--keep-last", "x"}, nil, "keep-last", 2},
		{"missing --to", []string{"backup", "save", ep}, nil, "--to: required", 2},
		{"missing identity file", []string{"backup", "verify", "--from", bucket, "--identity", filepath.Join(dir, "nope")}, nil, "--identity", 2},
		{"flag of another command", []string{"backup", "fetch", "--from", bucket, "--to", existing, "--keep-last", "3"}, nil, "keep-last", 2},
		{"unknown member", []string{"backup", "save", ep, "--to", bucket, "--member", "nosuch"}, nil, `--member "nosuch": no such member`, 2},
		{"verify missing name", []string{"backup", "verify", "--from", bucket, "etcd-1_2026-01-01_00-00-00.db"}, nil, "no such snapshot", 1},
		{"verify bad name", []string{"backup", "verify", "--from", bucket, "bogus"}, nil, `snapshot "bogus": expected`, 2},
		{"fetch latest of empty bucket", []string{"backup", "fetch", "--from", bucket, "latest", "--to", existing}, nil, "no complete snapshot", 1},
		{"prune without rules", []string{"backup", "prune", "--from", bucket}, nil, "no --keep-*", 2},
		{"bad output format", []string{"backup", "list", "--from", bucket, "-w", "yaml"}, nil, "--write-out", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := runEtcdops(t, tt.env, tt.args...)
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			last := lines[len(lines)-1]
			if code != tt.code || !strings.Contains(last, tt.want) || !strings.HasPrefix(last, "etcdops: ") {
				t.Errorf("exit %d, last line %q; want exit %d and an etcdops error containing %q\nstderr:\n%s", code, last, tt.code, tt.want, errOut)
			}
		})
	}
	assertNoFiles(t, dir)
	if b, _ := os.ReadFile(existing); string(b) != "x" {
		t.Error("a failed fetch changed the existing --to file")
	}
}

func assertNoFiles(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	if len(entries) > 0 {
		t.Errorf("bad input left %v in the bucket", entries)
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// waitNextSecond returns once the wall clock's second has changed.
func waitNextSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second).Sub(now))
}

func TestMain(m *testing.M) { objtest.Main(m) }

// TestBackupCredentialsStayOutOfOutput saves to MinIO with a wrong secret
// key and to a missing bucket: clear errors, no secret anywhere.
func TestBackupCredentialsStayOutOfOutput(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	s3 := objtest.S3(t)
	bucket := s3.NewBucket(t)
	ep := "--endpoints=" + c.Endpoints()[0]
	const secret = "wrong-secret-key-1234567890"
	wrong := []string{"AWS_SECRET_ACCESS_KEY=" + secret}
	out, errOut, code := runEtcdops(t, wrong, "backup", "save", ep, "--to", bucket)
	if code != 1 || strings.Contains(out+errOut, secret) {
		t.Errorf("wrong credentials: exit %d, output:\n%s%s", code, out, errOut)
	}
	missing := strings.Replace(bucket, "s3://", "s3://no-such-bucket-", 1)
	_, errOut, code = runEtcdops(t, nil, "backup", "save", ep, "--to", missing)
	if code != 2 || !strings.Contains(errOut, "no such bucket") {
		t.Errorf("missing bucket: exit %d, stderr:\n%s", code, errOut)
	}
	// And with the right ones, the log and the manifest hold no secret.
	out, errOut, code = runEtcdops(t, s3.Env, "backup", "save", ep, "--to", bucket, "-w", "json", "--log-level", "debug")
	if code != 0 {
		t.Fatalf("save: %s", errOut)
	}
	for _, kv := range s3.Env {
		_, v, _ := strings.Cut(kv, "=")
		if strings.Contains(out+errOut, v) {
			t.Errorf("output shows the value of %s", kv[:strings.Index(kv, "=")])
		}
	}
}

// TestBackupS3MultipartReadsLogThroughLogger fetches and verifies a
// snapshot that went to MinIO in several parts: the AWS SDK must not print
// its own warnings past etcdops' logger (every stderr line is JSON).
func TestBackupS3MultipartReadsLogThroughLogger(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	cli := etcdtest.NewClient(t, c.Endpoints()...)
	for i := range 300 { // ~19 MiB: three 8 MiB parts
		etcdtest.Put(t, cli, fmt.Sprintf("/big/%03d", i), strings.Repeat("x", 64<<10))
	}
	s3 := objtest.S3(t)
	bucket := s3.NewBucket(t)
	if _, errOut, code := runEtcdops(t, s3.Env, "backup", "save", "--endpoints="+c.Endpoints()[0], "--to", bucket); code != 0 {
		t.Fatalf("save: %s", errOut)
	}
	to := filepath.Join(t.TempDir(), "snap.db")
	for _, args := range [][]string{
		{"backup", "fetch", "--from", bucket, "latest", "--to", to},
		{"backup", "verify", "--from", bucket, "latest"},
	} {
		_, errOut, code := runEtcdops(t, s3.Env, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", args[1], code, errOut)
		}
		for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
			if line != "" && !strings.HasPrefix(line, "{") {
				t.Errorf("%s: stderr line not from the logger: %s", args[1], line)
			}
		}
	}
}
