package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/etcdops/etcdops/internal/etcdtest"
)

// TestFetchKilledThenRerun stops a real `backup fetch` midway (SIGSTOP once its .part exists), runs
// a second fetch to the same file, which must fail without touching the first one's .part, then
// kills the first with SIGKILL: the next fetch succeeds at its first try.
func TestFetchKilledThenRerun(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	value := make([]byte, 256<<10)
	for i := range 96 {
		rand.Read(value)
		etcdtest.Put(t, c.Client(), fmt.Sprintf("k%03d", i), string(value))
	}
	bucket := "file://" + t.TempDir()
	if _, errOut, code := runEtcdops(t, nil, "backup", "save", "--endpoints="+c.Endpoints()[0], "--to", bucket, "--compress", "--quiet"); code != 0 {
		t.Fatalf("save: exit %d\n%s", code, errOut)
	}
	dst := filepath.Join(t.TempDir(), "snapshot.db")
	part := dst + ".part"
	fetch := []string{"backup", "fetch", "--from", bucket, "latest", "--to", dst, "--quiet"}

	first, exited := stopMidway(t, fetch, dst, part)
	before, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runEtcdops(t, nil, fetch...)
	if code != 1 || !strings.Contains(errOut, "another write to this file is in progress") {
		t.Errorf("fetch beside a running one: exit %d, want 1 and a clear error\n%s", code, errOut)
	}
	if after, err := os.ReadFile(part); err != nil || string(after) != string(before) {
		t.Fatalf("the running fetch's .part was disturbed: %v", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s appeared: %v", dst, err)
	}

	first.Process.Signal(syscall.SIGKILL)
	if err := <-exited; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the stopped fetch ended with %v, want killed", err)
	}
	if _, err := os.Stat(part); err != nil {
		t.Fatalf("the killed fetch left no .part: %v", err)
	}
	out, errOut, code := runEtcdops(t, nil, fetch...)
	if code != 0 || !strings.Contains(out, "fetched ") {
		t.Fatalf("fetch after a killed one: exit %d\n%s%s", code, out, errOut)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("fetched file: %v, want mode 0600", err)
	}
	if _, err := os.Stat(part); !errors.Is(err, os.ErrNotExist) {
		t.Errorf(".part left behind: %v", err)
	}
	if out, err := exec.Command(etcdtest.Tool(t, "etcdutl"), "snapshot", "status", dst).CombinedOutput(); err != nil {
		t.Errorf("etcdutl snapshot status of the fetched file: %v\n%s", err, out)
	}
}

// stopMidway starts etcdops with args and stops it (SIGSTOP) while it writes part, retrying when a
// run finishes first. It returns the stopped process and the channel its Wait result arrives on.
func stopMidway(t *testing.T, args []string, dst, part string) (*exec.Cmd, chan error) {
	t.Helper()
	for range 5 {
		os.Remove(dst)
		cmd := exec.Command(etcdtest.EtcdopsBin(t), args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		for {
			if _, err := os.Stat(part); err == nil {
				cmd.Process.Signal(syscall.SIGSTOP)
				// Once it has stopped (a signal is not a stop), it may have renamed the .part
				// already, or not locked it yet: only a .part it holds locked is its write.
				if stopped(t, cmd.Process.Pid) && lockedElsewhere(part) {
					t.Cleanup(func() { cmd.Process.Kill() })
					return cmd, exited
				}
				cmd.Process.Signal(syscall.SIGCONT)
			}
			select {
			case <-exited:
			default:
				continue
			}
			break
		}
	}
	t.Fatal("five runs finished before they could be stopped midway")
	return nil, nil
}

// stopped waits until process pid is stopped (state T), and reports false
// if it ended first.
func stopped(t *testing.T, pid int) bool {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		// pid (comm) state ...: the state follows the last ')'.
		if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(f) > 0 {
			switch f[0] {
			case "T", "t":
				return true
			case "Z", "X":
				return false
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("process %d not stopped 10s after SIGSTOP", pid)
	return false
}

// lockedElsewhere tells whether another process holds path's lock (see
// atomicfile).
func lockedElsewhere(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return errors.Is(unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB), unix.EWOULDBLOCK)
}
