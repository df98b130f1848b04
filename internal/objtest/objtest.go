// Package objtest gives tests real object stores: file:// and mem://, and
// MinIO (s3://), fake-gcs-server (gs://) and Azurite (azblob://) servers.
//
// The servers are installed, pinned, by scripts/tools.sh and found through
// ETCDOPS_TOOLS, as scripts/test.sh sets it; a test that needs a missing one
// fails. Each server starts once per test process, on first use, on a free
// loopback port with its data in a temporary directory, and dies with the
// process. A package whose tests use them stops them cleanly with
//
//	func TestMain(m *testing.M) { objtest.Main(m) }
//
// The gocloud.dev drivers read credentials and emulator endpoints from the
// environment, and the gs:// and azblob:// ones read it once per process. So
// a server's first use also sets its Backend.Env in this process's
// environment with os.Setenv (t.Setenv would forbid t.Parallel and be undone
// while the drivers keep what they read). Subprocesses inherit it; a test
// that builds a child's environment from scratch adds Env.
package objtest

import (
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Backend is one kind of object store, ready for a test to create buckets in.
type Backend struct {
	// Name is the bucket URL scheme: "file", "mem", "s3", "gs" or "azblob".
	Name string
	// Env is what a process needs, as KEY=VALUE, to open this backend's
	// bucket URLs: credentials and emulator endpoints. It is already set in
	// this process's environment.
	Env []string
	// Ephemeral is true for mem://, where every blob.OpenBucket of a URL
	// returns a new, empty bucket: only code that opens the URL once can use
	// it, and a subprocess never sees what the test wrote.
	Ephemeral bool

	newBucket func(t testing.TB) string
}

// NewBucket creates a new, empty bucket and returns its URL for
// blob.OpenBucket, so that tests never see each other's objects.
func (b Backend) NewBucket(t testing.TB) string {
	t.Helper()
	return b.newBucket(t)
}

// Backends returns every backend: file, mem, s3, gs and azblob, starting the
// servers that are not running yet (concurrently). The test fails if a
// server cannot be started.
func Backends(t testing.TB) []Backend {
	t.Helper()
	var wg sync.WaitGroup
	for _, s := range []*service{minioService, fakeGCSService, azuriteService} {
		wg.Go(func() { s.ensure() })
	}
	wg.Wait()
	return []Backend{File(t), Mem(t), S3(t), GCS(t), Azure(t)}
}

// File returns the file:// backend: each bucket is a directory of
// t.TempDir(), opened with fileblob's default options (temporary files in
// os.TempDir(), renamed into place on Close).
func File(t testing.TB) Backend {
	t.Helper()
	return Backend{Name: "file", newBucket: func(t testing.TB) string {
		u := url.URL{Scheme: "file", Path: t.TempDir()}
		return u.String()
	}}
}

// Mem returns the mem:// backend; see Backend.Ephemeral.
func Mem(t testing.TB) Backend {
	t.Helper()
	return Backend{Name: "mem", Ephemeral: true, newBucket: func(testing.TB) string { return "mem://" }}
}

// Main runs the tests of a package and then stops the servers they started
// and removes their data. Call it from TestMain; the test binary exits with
// the tests' status.
func Main(m *testing.M) {
	defer stopAll()
	m.Run()
}

var (
	bucketSeq  atomic.Int64
	notNameRun = regexp.MustCompile(`[^a-z0-9]+`)
)

// bucketName returns a name valid for S3, GCS and Azure containers (3 to 63
// lower-case letters, digits and single hyphens), unique in this process and
// readable as the test's.
func bucketName(t testing.TB) string {
	base := strings.Trim(notNameRun.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 40 {
		base = strings.TrimRight(base[:40], "-")
	}
	if base == "" {
		base = "b"
	}
	return base + "-" + strconv.FormatInt(bucketSeq.Add(1), 10)
}

// setenv sets env (KEY=VALUE pairs) in this process's environment.
func setenv(env []string) error {
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	return nil
}
