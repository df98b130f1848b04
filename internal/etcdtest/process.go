package etcdtest

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// Process is an etcd member running as a child process: `etcdops serve` or
// stock etcd, started with the flags of its spec (plus Args).
type Process struct {
	Spec   MemberSpec
	Binary string
	// Command is the binary's arguments before the member flags ("serve").
	Command []string
	// Env is added to the child's environment.
	Env []string
	// Dir is the child's working directory.
	Dir string

	mu     sync.Mutex
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// ProcessCluster is a cluster of member processes.
type ProcessCluster struct {
	Procs []*Process
}

// StartServeCluster starts n `etcdops serve` processes forming a new cluster
// and waits until all are healthy. They are killed when the test ends.
func StartServeCluster(t testing.TB, n int, extra ...string) *ProcessCluster {
	t.Helper()
	return StartProcesses(t, withExtra(Specs(t, n, t.TempDir()), extra), EtcdopsBin(t), "serve")
}

// The stock etcd servers that scripts/tools.sh installs, as names for Tool:
// the release etcdops embeds, and the 3.5 release clusters migrate from.
const (
	StockEtcd   = "etcd"
	StockEtcd35 = "etcd-3.5"
)

// StartStockCluster is StartServeCluster with the stock etcd binary.
func StartStockCluster(t testing.TB, n int, extra ...string) *ProcessCluster {
	t.Helper()
	return StartToolCluster(t, StockEtcd, n, extra...)
}

// StartToolCluster is StartServeCluster with a stock etcd server, StockEtcd
// or StockEtcd35.
func StartToolCluster(t testing.TB, tool string, n int, extra ...string) *ProcessCluster {
	t.Helper()
	return StartProcesses(t, withExtra(Specs(t, n, t.TempDir()), extra), Tool(t, tool))
}

func withExtra(specs []MemberSpec, extra []string) []MemberSpec {
	for i := range specs {
		specs[i].Extra = append(specs[i].Extra, extra...)
	}
	return specs
}

// StartProcesses starts one process of bin (with command, e.g. "serve")
// for each spec and waits until all are healthy.
func StartProcesses(t testing.TB, specs []MemberSpec, bin string, command ...string) *ProcessCluster {
	t.Helper()
	c := &ProcessCluster{}
	for _, spec := range specs {
		p := &Process{Spec: spec, Binary: bin, Command: command}
		p.Start(t)
		c.Procs = append(c.Procs, p)
	}
	for _, p := range c.Procs {
		p.WaitHealthy(t, 60*time.Second)
	}
	return c
}

// Endpoints returns every member's client URL.
func (c *ProcessCluster) Endpoints() []string {
	var eps []string
	for _, p := range c.Procs {
		eps = append(eps, p.Spec.ClientURL)
	}
	return eps
}

// Start starts the process with Command and the flags of Spec; it is killed
// when the test ends if still running.
func (p *Process) Start(t testing.TB) {
	t.Helper()
	p.start(t, append(append([]string{}, p.Command...), p.Spec.Args()...))
}

// StartRaw starts the process with Command alone, for members configured by
// a config file, the environment, or defaults; Spec.ClientURL still says
// where to check its health.
func (p *Process) StartRaw(t testing.TB) {
	t.Helper()
	p.start(t, p.Command)
}

func (p *Process) start(t testing.TB, args []string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.Binary, args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Dir = p.Dir
	p.stderr = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.Spec.Name, err)
	}
	p.cmd, p.done, p.err = cmd, make(chan struct{}), nil
	go func(done chan struct{}) {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}(p.done)
	t.Cleanup(func() { p.Kill(t) })
}

// Pid returns the process id of the last start.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Output returns what the process wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.stderr.String() }

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("signal %s: %v", p.Spec.Name, err)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit code.
func (p *Process) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s still running after %v; output:\n%s", p.Spec.Name, timeout, p.Output())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	default:
		t.Fatalf("wait %s: %v", p.Spec.Name, p.err)
		return -1
	}
}

// Kill kills the process with SIGKILL and waits for it to exit.
func (p *Process) Kill(t testing.TB) {
	if p.Running() {
		p.Signal(t, syscall.SIGKILL)
		<-p.done
	}
}

// WaitHealthy polls the member's /health until it reports healthy.
func (p *Process) WaitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, func() error {
		if !p.Running() {
			return Stop(fmt.Errorf("%s exited; output:\n%s", p.Spec.Name, p.Output()))
		}
		return CheckHealth(p.Spec)
	})
}

// CheckHealth returns nil when GET /health on the member's client URL
// reports it healthy.
func CheckHealth(spec MemberSpec) error {
	hc := http.Client{Timeout: time.Second}
	if spec.TLS != nil {
		info := transport.TLSInfo{CertFile: spec.TLS.CertFile, KeyFile: spec.TLS.KeyFile, TrustedCAFile: spec.TLS.CAFile}
		cfg, err := info.ClientConfig()
		if err != nil {
			return err
		}
		hc.Transport = &http.Transport{TLSClientConfig: cfg}
	}
	clientURL := spec.ClientURL
	resp, err := hc.Get(clientURL + "/health")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(buf.Bytes(), []byte(`"health":"true"`)) {
		return fmt.Errorf("%s/health: %s %s", clientURL, resp.Status, buf.String())
	}
	return nil
}

// SyncBuffer is a child's stderr that a test reads while it runs.
type SyncBuffer = syncBuffer

// syncBuffer is a bytes.Buffer safe for a child's writes and test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
