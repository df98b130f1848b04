package objtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	startTimeout = 90 * time.Second // MinIO can take tens of seconds on a busy machine
	stopTimeout  = 10 * time.Second
	pollEvery    = 50 * time.Millisecond
)

// service is one kind of server, started at most once per process.
type service struct {
	name  string // for messages: "MinIO"
	start func() (*server, error)

	once sync.Once
	srv  *server
	err  error
}

var (
	minioService   = &service{name: "MinIO", start: startMinIO}
	fakeGCSService = &service{name: "fake-gcs-server", start: startFakeGCS}
	azuriteService = &service{name: "Azurite", start: startAzurite}
)

// ensure starts the server unless it was already started (or failed to).
func (s *service) ensure() (*server, error) {
	s.once.Do(func() {
		s.srv, s.err = s.start()
		if s.err == nil {
			s.err = setenv(s.srv.env)
		}
		if s.err != nil {
			s.err = fmt.Errorf("start %s: %w", s.name, s.err)
		}
	})
	return s.srv, s.err
}

// get is ensure for a test, which fails if the server cannot be started or
// has died since.
func (s *service) get(t testing.TB) *server {
	t.Helper()
	srv, err := s.ensure()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.done:
		t.Fatalf("%s exited (%v); output:\n%s", s.name, srv.cmd.ProcessState, srv.out)
	default:
	}
	return srv
}

// tool returns the path of a server installed by scripts/tools.sh.
func tool(name string) (string, error) {
	dir := os.Getenv("ETCDOPS_TOOLS")
	if dir == "" {
		return "", errors.New("ETCDOPS_TOOLS is not set: run the tests with scripts/test.sh, which installs MinIO, fake-gcs-server and Azurite")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w (run scripts/test.sh, which installs it)", err)
	}
	return p, nil
}

// serverSpec says how to run one kind of server.
type serverSpec struct {
	name string
	path string
	// args returns the command-line arguments for listening on addr
	// (127.0.0.1:port) and keeping data in dir.
	args func(addr, dir string) []string
	// env is added to the server's environment.
	env     []string
	stopSig syscall.Signal
	// ready returns nil once the server at addr serves requests.
	ready func(ctx context.Context, addr string) error
}

// server is a running server process.
type server struct {
	spec serverSpec
	addr string // 127.0.0.1:port
	dir  string
	env  []string // for clients: Backend.Env
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{} // closed when the process has exited
}

var (
	runningMu sync.Mutex
	running   []*server
)

// startServer starts spec's server on a free loopback port and waits until
// it is ready. A port taken between choosing and binding it makes the server
// exit, so it tries again with another.
func startServer(spec serverSpec) (*server, error) {
	dir, err := dataDir(spec.name)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		srv, err := tryStart(spec, dir)
		if err == nil {
			return srv, nil
		}
		if attempt == 3 || !errors.Is(err, errExited) || !strings.Contains(err.Error(), "already in use") {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

var errExited = errors.New("exited before it was ready")

func tryStart(spec serverSpec, dir string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(spec.path, spec.args(addr, dir)...)
	// HOME is the data directory too, so that nothing is written to the
	// user's (MinIO creates ~/.minio).
	cmd.Env = append(append(os.Environ(), "HOME="+dir), spec.env...)
	cmd.Dir = dir
	out := &tailBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// The kernel kills the server when the thread that started it exits: see
	// spawn, whose thread lives as long as the process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := spawn(cmd); err != nil {
		return nil, err
	}
	srv := &server{spec: spec, addr: addr, dir: dir, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(srv.done)
	}()

	if err := srv.waitReady(); err != nil {
		srv.kill()
		return nil, err
	}
	runningMu.Lock()
	running = append(running, srv)
	runningMu.Unlock()
	return srv, nil
}

// waitReady polls the server until it is ready, has exited, or startTimeout
// has passed.
func (s *server) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var last error
	for {
		select {
		case <-s.done:
			return fmt.Errorf("%s %w (%v); output:\n%s", s.spec.path, errExited, s.cmd.ProcessState, s.out)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %v; output:\n%s", s.spec.path, startTimeout, last, s.out)
		case <-time.After(pollEvery):
		}
		if last = s.spec.ready(ctx, s.addr); last == nil {
			return nil
		}
	}
}

// stop asks the server to exit with its stop signal, kills it if it has not
// exited after stopTimeout, and removes its data.
func (s *server) stop() {
	s.cmd.Process.Signal(s.spec.stopSig)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		fmt.Fprintf(os.Stderr, "objtest: %s did not stop on %v within %v; killing it\n", s.spec.name, s.spec.stopSig, stopTimeout)
		s.kill()
	}
	os.RemoveAll(s.dir)
}

func (s *server) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// stopAll stops every server this process started.
func stopAll() {
	runningMu.Lock()
	defer runningMu.Unlock()
	var wg sync.WaitGroup
	for _, s := range running {
		wg.Go(s.stop)
	}
	wg.Wait()
	running = nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

var (
	spawnOnce sync.Once
	spawnc    = make(chan spawnReq)
)

// spawn starts cmd from one OS thread that never exits. Pdeathsig fires when
// the thread that forked the child exits, not the process; a goroutine runs
// on whichever thread the scheduler picks, and the runtime ends a thread
// whose locked goroutine returns. This goroutine locks its thread and never
// returns, so the thread lives as long as the process.
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		go func() {
			runtime.LockOSThread()
			for r := range spawnc {
				r.err <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd: cmd, err: make(chan error)}
	spawnc <- r
	return <-r.err
}

// dataDir returns a new directory for a server's data under
// $TMPDIR/etcdops-objtest, first removing those of test processes that
// ended without objtest.Main cleaning up.
func dataDir(name string) (string, error) {
	base := filepath.Join(os.TempDir(), "etcdops-objtest")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	sweepOnce.Do(func() { sweep(base) })
	return os.MkdirTemp(base, fmt.Sprintf("%d-%s-", os.Getpid(), name))
}

var sweepOnce sync.Once

// sweep removes the data directories (named PID-server-random) of processes
// that no longer exist.
func sweep(base string) {
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		pidText, _, _ := strings.Cut(e.Name(), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
}

// tailBuffer keeps the last tailMax bytes written to it: a server's recent
// output, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 16 << 10

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > tailMax {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-tailMax:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
