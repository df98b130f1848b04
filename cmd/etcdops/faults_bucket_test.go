package main

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"

	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/objtest"
)

// backend returns the object store backend called name.
func backend(t *testing.T, name string) objtest.Backend {
	t.Helper()
	switch name {
	case "file":
		return objtest.File(t)
	case "s3":
		return objtest.S3(t)
	case "gs":
		return objtest.GCS(t)
	case "azblob":
		return objtest.Azure(t)
	}
	t.Fatalf("no backend %s", name)
	return objtest.Backend{}
}

// startEtcdops starts etcdops as a child process that the test kills
// when it ends.
func startEtcdops(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(etcdtest.EtcdopsBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = &strings.Builder{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

// saveKilled kills `backup save` with SIGKILL while it uploads to the
// backend: a proxy in front of the member pauses the snapshot stream once
// 9 MiB of the 10 MiB went through (more than one 8 MiB upload part).
func saveKilled(backendName string) func(t *testing.T, fx *faultFixture) {
	return func(t *testing.T, fx *faultFixture) {
		be := backend(t, backendName)
		bucket := be.NewBucket(t)
		p := startProxy(t, etcdtest.HostPort(t, fx.endpoint), pause, false, 9<<20)
		cmd := startEtcdops(t, be.Env, "backup", "save", "--endpoints", "http://"+p.Addr, "--to", bucket)
		p.WaitFired(t, time.Minute)
		cmd.Process.Kill()
		cmd.Wait()
		p.Release()
		assertNoSnapshots(t, be.Env, bucket)
		if keys := bucketKeys(t, bucket); be.Name != "file" && len(keys) > 0 {
			t.Errorf("a killed save left %v in the bucket", keys)
		}

		waitNextSecond() // a new snapshot name
		out, stderr, code := runEtcdops(t, be.Env, "backup", "save", "--endpoints", fx.endpoint, "--to", bucket, "-w", "json")
		if code != 0 {
			t.Fatalf("save after the killed one: exit %d: %s", code, stderr)
		}
		var m struct{ Name string }
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := runEtcdops(t, be.Env, "backup", "prune", "--from", bucket, "--keep-last", "1"); code != 0 {
			t.Fatalf("prune: exit %d: %s", code, stderr)
		}
		want := []string{m.Name, m.Name + ".json"}
		if keys := bucketKeys(t, bucket); !slices.Equal(keys, want) {
			t.Errorf("after save and prune the bucket holds %v, want %v", keys, want)
		}
		assertNoLeftovers(t, bucket, want)
		if _, stderr, code := runEtcdops(t, be.Env, "backup", "verify", "--from", bucket, "latest"); code != 0 {
			t.Errorf("verify: exit %d: %s", code, stderr)
		}
	}
}

// assertNoSnapshots checks that `backup list` shows nothing in bucket.
func assertNoSnapshots(t *testing.T, env []string, bucket string) {
	t.Helper()
	out, stderr, code := runEtcdops(t, env, "backup", "list", "--from", bucket, "-w", "json")
	var snaps []json.RawMessage
	if code != 0 || json.Unmarshal([]byte(out), &snaps) != nil || len(snaps) > 0 {
		t.Errorf("backup list: exit %d, %s%s; want no snapshot", code, out, stderr)
	}
}

// assertNoLeftovers looks past the blob API for what a killed upload may
// leave: files in a file:// bucket's directory, S3 multipart uploads.
func assertNoLeftovers(t *testing.T, bucketURL string, want []string) {
	t.Helper()
	u, err := url.Parse(bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	switch u.Scheme {
	case "file":
		if got := list(t, u.Path); !slices.Equal(got, want) {
			t.Errorf("the bucket directory holds %v, want %v", got, want)
		}
	case "s3":
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b, err := blob.OpenBucket(ctx, bucketURL)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		var c *s3.Client
		if !b.As(&c) {
			t.Fatal("not an S3 bucket")
		}
		out, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &u.Host})
		if err != nil {
			t.Fatal(err)
		}
		for _, up := range out.Uploads {
			t.Errorf("multipart upload of %s left behind", *up.Key)
		}
	}
}

// viaProxy returns the environment and URL that reach bucket, of backend
// be, through a new proxy that meets the transfer with fault after `after`
// bytes (of upload when up, else of download), and the proxy.
func viaProxy(t *testing.T, be objtest.Backend, bucket string, fault proxyFault, up bool, after int64) ([]string, string, *faultProxy) {
	t.Helper()
	u, err := url.Parse(bucket)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	env := slices.Clone(be.Env)
	var p *faultProxy
	switch be.Name {
	case "s3": // the endpoint is in the URL
		p = startProxy(t, etcdtest.HostPort(t, q.Get("endpoint")), fault, up, after)
		q.Set("endpoint", "http://"+p.Addr)
	case "azblob": // so is Azurite's domain
		p = startProxy(t, q.Get("domain"), fault, up, after)
		q.Set("domain", p.Addr)
	case "gs": // fake-gcs-server's address is in the environment
		const key = "STORAGE_EMULATOR_HOST="
		i := slices.IndexFunc(env, func(kv string) bool { return strings.HasPrefix(kv, key) })
		if i < 0 {
			t.Fatalf("no %s in %v", key, env)
		}
		p = startProxy(t, strings.TrimPrefix(env[i], key), fault, up, after)
		env[i] = key + p.Addr
	default:
		t.Fatalf("no proxy for %s", be.Name)
	}
	u.RawQuery = q.Encode()
	return env, u.String(), p
}

// failsWithin runs etcdops and checks that it exits 1 within limit.
func failsWithin(t *testing.T, limit time.Duration, env []string, args ...string) string {
	t.Helper()
	return waitFails(t, startEtcdops(t, env, args...), limit)
}

// waitFails checks that cmd, from startEtcdops, exits 1 within limit.
func waitFails(t *testing.T, cmd *exec.Cmd, limit time.Duration) string {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		cmd.Process.Signal(syscall.SIGQUIT) // Go prints every goroutine's stack
		<-done
		t.Fatalf("still running after %v; stderr:\n%s", limit, cmd.Stderr)
	}
	stderr := cmd.Stderr.(*strings.Builder).String()
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.HasPrefix(last, "etcdops: ") {
		t.Fatalf("exit %d, last line %q; want exit 1 and an error\nstderr:\n%s", code, last, stderr)
	}
	t.Log(last)
	return last
}

// bucketFailsDuringUpload puts a proxy that meets the upload with fault
// after 2 MiB between `backup save` and the backend.
func bucketFailsDuringUpload(backendName string, fault proxyFault) func(t *testing.T, fx *faultFixture) {
	return func(t *testing.T, fx *faultFixture) {
		be := backend(t, backendName)
		bucket := be.NewBucket(t)
		env, proxied, _ := viaProxy(t, be, bucket, fault, true, 2<<20)
		last := failsWithin(t, time.Minute, env, append([]string{"backup", "save", "--endpoints", fx.endpoint,
			"--to", proxied, "--command-timeout", "5s"}, stallFlags(fault)...)...)
		assertNamesFault(t, fault, last)
		if !strings.Contains(last, "upload") || strings.Contains(last, "stream from") {
			t.Errorf("error %q does not name the upload as what failed", last)
		}
		if keys := bucketKeys(t, bucket); len(keys) > 0 {
			t.Errorf("a failed upload left %v visible", keys)
		}
		// The failing bucket took the abort of the upload too: the
		// next save's retention removes it.
		waitNextSecond()
		out, stderr, code := runEtcdops(t, be.Env, "backup", "save", "--endpoints", fx.endpoint, "--to", bucket, "--keep-last", "1", "-w", "json")
		if code != 0 {
			t.Fatalf("save after the failed one: exit %d: %s", code, stderr)
		}
		var m struct{ Name string }
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatal(err)
		}
		assertNoLeftovers(t, bucket, []string{m.Name, m.Name + ".json"})
	}
}

// bucketFailsDuringDownload has `backup fetch` read from the backend
// through a proxy that meets the download with fault after 2 MiB.
func bucketFailsDuringDownload(backendName string, fault proxyFault) func(t *testing.T, fx *faultFixture) {
	return func(t *testing.T, fx *faultFixture) {
		be := backend(t, backendName)
		bucket := be.NewBucket(t)
		if _, stderr, code := runEtcdops(t, be.Env, "backup", "save", "--endpoints", fx.endpoint, "--to", bucket); code != 0 {
			t.Fatalf("save: %s", stderr)
		}
		env, proxied, _ := viaProxy(t, be, bucket, fault, false, 2<<20)
		dir := t.TempDir()
		last := failsWithin(t, time.Minute, env, append([]string{"backup", "fetch", "--from", proxied, "latest",
			"--to", filepath.Join(dir, "s.db")}, stallFlags(fault)...)...)
		assertNamesFault(t, fault, last)
		assertNothingIn(t, dir)
	}
}

// testStallTimeout is the --stall-timeout of the rows whose bucket stalls.
const testStallTimeout = "5s"

// stallFlags are the flags of a row whose bucket meets fault: a short
// --stall-timeout when it stalls, else the default.
func stallFlags(fault proxyFault) []string {
	if fault == stall {
		return []string{"--stall-timeout", testStallTimeout}
	}
	return nil
}

// assertNamesFault checks that a stalled transfer's error says so.
func assertNamesFault(t *testing.T, fault proxyFault, last string) {
	t.Helper()
	if want := "bucket stalled: no byte moved for " + testStallTimeout; fault == stall && !strings.Contains(last, want) {
		t.Errorf("error %q does not say %q", last, want)
	}
}

// bucketSilent runs `backup save` (op "save") or `backup fetch` against an
// S3 endpoint that accepts connections and never answers.
func bucketSilent(op string) func(t *testing.T, fx *faultFixture) {
	return func(t *testing.T, fx *faultFixture) {
		be := objtest.S3(t)
		u, err := url.Parse(be.NewBucket(t))
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("endpoint", "http://"+silentServer(t))
		u.RawQuery = q.Encode()
		dir := t.TempDir()
		args := []string{"backup", "save", "--endpoints", fx.endpoint, "--to", u.String()}
		if op == "fetch" {
			args = []string{"backup", "fetch", "--from", u.String(), "latest", "--to", filepath.Join(dir, "s.db")}
		}
		last := failsWithin(t, time.Minute, be.Env, append(args, "--stall-timeout", testStallTimeout)...)
		if want := "bucket stalled: no answer for " + testStallTimeout; !strings.Contains(last, want) {
			t.Errorf("error %q does not say %q", last, want)
		}
		assertNothingIn(t, dir)
	}
}

// silentServer returns the address of a server that accepts connections
// and never answers, until the test ends.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn // read once the accept loop is done
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}
