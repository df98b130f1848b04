package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestWriteFileReplacesWithMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "new" {
		t.Fatalf("read %q, %v; want new", got, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(path + ".part"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf(".part left behind: %v", err)
	}
}

func TestStalePartIsReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	// What a writer killed with SIGKILL leaves: a .part nobody holds, with another mode.
	if err := os.WriteFile(path+".part", []byte("garbage from a killed run, longer than the data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatalf("write over a stale .part: %v", err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "data" {
		t.Fatalf("read %q, want data", got)
	}
}

func TestConcurrentWriterIsBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	first, err := Create(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Abort()
	if _, err := first.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	// flock locks belong to open file descriptions, so a second open in this process conflicts as
	// another process's would.
	if _, err := Create(path, 0o600); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Create: %v, want ErrBusy", err)
	}
	if err := first.Commit(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "first" {
		t.Fatalf("the running writer's .part was disturbed: read %q", got)
	}
	if err := WriteFile(path, []byte("second"), 0o600); err != nil {
		t.Fatalf("write after the first committed: %v", err)
	}
}

func TestAbortKeepsOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half"))
	f.Abort()
	got, _ := os.ReadFile(path)
	if string(got) != "old" {
		t.Fatalf("read %q after abort, want old", got)
	}
	if _, err := os.Stat(path + ".part"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf(".part left behind: %v", err)
	}
}

func TestCreateInMissingDirFails(t *testing.T) {
	if _, err := Create(filepath.Join(t.TempDir(), "no", "f"), 0o600); err == nil {
		t.Fatal("Create in a missing directory succeeded")
	}
}

func TestLockDirExcludesAnotherHolder(t *testing.T) {
	dir := t.TempDir()
	unlock, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	acquired := make(chan func())
	go func() {
		u, err := LockDir(dir)
		if err != nil {
			t.Error(err)
		}
		acquired <- u
	}()
	// A second open file description of the same directory must not get the lock while it is held:
	// try it without waiting.
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("flock while LockDir holds it: %v, want EWOULDBLOCK", err)
	}
	unlock()
	(<-acquired)()
	if _, err := LockDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("LockDir of a missing directory succeeded")
	}
}

// Writers racing on one path never leave a short file there: a writer that finds the .part of one
// that is committing fails with ErrBusy or starts a new .part, never truncates the finished one.
func TestRacingWritersNeverTruncateACommittedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	data := make([]byte, 64<<10)
	if err := WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				if err := WriteFile(path, data, 0o600); err != nil && !errors.Is(err, ErrBusy) {
					errs <- err
					return
				}
			}
		}()
	}
	for range 3000 {
		if fi, err := os.Stat(path); err != nil || fi.Size() != int64(len(data)) {
			close(done)
			t.Fatalf("%s: %v, want a file of %d bytes", path, err, len(data))
		}
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
