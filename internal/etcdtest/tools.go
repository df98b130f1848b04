package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

// Tool returns the path of a stock etcd tool (etcd, etcdctl, etcdutl,
// benchmark) installed by scripts/tools.sh. The test fails when it is
// missing: these tests are worthless without the real tools.
func Tool(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("ETCDOPS_TOOLS")
	if dir == "" {
		t.Fatalf("ETCDOPS_TOOLS is not set: run the tests with scripts/test.sh, which installs the stock etcd tools")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("stock %s: %v (run scripts/tools.sh)", name, err)
	}
	return p
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// EtcdopsBin returns the path of an etcdops binary: ETCDOPS_BIN when set
// (scripts/test.sh builds it), else one built once for this test process.
func EtcdopsBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ETCDOPS_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "etcdops-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "etcdops")
		cmd := exec.Command("go", "build", "-o", builtBin, "./cmd/etcdops")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build etcdops: %v", buildErr)
	}
	return builtBin
}

// Etcdctl runs stock etcdctl against endpoints and returns its stdout; the
// test fails if it exits non-zero.
func Etcdctl(t testing.TB, endpoints []string, args ...string) string {
	t.Helper()
	out, err := RunEtcdctl(t, endpoints, args...)
	if err != nil {
		t.Fatalf("etcdctl %v: %v", args, err)
	}
	return out
}

// RunEtcdctl runs stock etcdctl and returns its stdout and any error, with
// stderr in the error.
func RunEtcdctl(t testing.TB, endpoints []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eps := ""
	for i, e := range endpoints {
		if i > 0 {
			eps += ","
		}
		eps += e
	}
	cmd := exec.CommandContext(ctx, Tool(t, "etcdctl"), append([]string{"--endpoints=" + eps}, args...)...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%w: %s", err, stderr.String())
	}
	return string(out), nil
}

// errStop wraps an error that Eventually must not retry.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

// Stop marks err as final for Eventually.
func Stop(err error) error { return errStop{err} }

// Eventually polls f every 50ms until it returns nil, fails the test when
// timeout passes or f returns an error wrapped by Stop.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		var stop errStop
		if errors.As(err, &stop) {
			t.Fatal(stop.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not done after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func quietLogger() *zap.Logger { return zap.NewNop() }
