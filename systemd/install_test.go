package systemd

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

func TestInstall(t *testing.T) {
	// The modes must not depend on the umask of whoever installs.
	defer syscall.Umask(syscall.Umask(0o077))

	root := t.TempDir()
	files := memberFiles(t, Member{Name: "infra1"})
	unit := filepath.Join(root, "etc/systemd/system/etcdops-infra1.service")
	env := filepath.Join(root, "etc/etcdops/infra1.env")

	if err := Install(root, files, false); err != nil {
		t.Fatalf("install: %v", err)
	}
	checkMode(t, unit, 0o644)
	checkMode(t, env, 0o600)
	for _, dir := range []string{"etc", "etc/systemd", "etc/systemd/system", "etc/etcdops"} {
		checkMode(t, filepath.Join(root, dir), 0o755)
	}
	if got := readFile(t, unit); got != string(files[0].Data) {
		t.Errorf("unit content:\n%s", got)
	}
	for _, p := range []string{unit + ".part", env + ".part"} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}

	t.Run("same content again", func(t *testing.T) {
		if err := os.Chmod(env, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := Install(root, files, false); err != nil {
			t.Fatalf("reinstall: %v", err)
		}
		checkMode(t, env, 0o600)
	})

	t.Run("refuses to replace an edited file", func(t *testing.T) {
		if err := os.WriteFile(env, []byte("ETCD_NAME=edited\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		other := memberFiles(t, Member{Name: "infra1", UnitName: "etcd.service"})
		err := Install(root, other, false)
		if !errors.Is(err, ErrDiffers) {
			t.Fatalf("got %v, want ErrDiffers", err)
		}
		if got := readFile(t, env); got != "ETCD_NAME=edited\n" {
			t.Errorf("edited file changed to:\n%s", got)
		}
		// Nothing is written when one file is refused, not even the new unit.
		if _, err := os.Stat(filepath.Join(root, "etc/systemd/system/etcd.service")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("new unit written despite the refusal: %v", err)
		}
	})

	t.Run("force replaces by renaming", func(t *testing.T) {
		old, err := os.Open(env)
		if err != nil {
			t.Fatal(err)
		}
		defer old.Close()
		// A stale .part, as after a crash, with a too open mode.
		if err := os.WriteFile(env+".part", []byte("ETCD_NAME=stale\n"), 0o666); err != nil {
			t.Fatal(err)
		}
		if err := Install(root, files, true); err != nil {
			t.Fatalf("forced install: %v", err)
		}
		if got := readFile(t, env); got != string(files[1].Data) {
			t.Errorf("env file not replaced:\n%s", got)
		}
		checkMode(t, env, 0o600)
		// The old file was replaced by rename, not rewritten in place: a
		// reader that had it open still sees the whole old content.
		b, err := io.ReadAll(old)
		if err != nil || string(b) != "ETCD_NAME=edited\n" {
			t.Errorf("old file read %q, %v: it was modified in place", b, err)
		}
		if _, err := os.Lstat(env + ".part"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale .part left behind: %v", err)
		}
	})
}

func TestInstallErrors(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "etc"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		file File
	}{
		{"relative path", File{Path: "etc/a.service", Mode: 0o644}},
		{"file in the way of a directory", File{Path: "/etc/systemd/system/a.service", Mode: 0o644}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Install(root, []File{tt.file}, false); err == nil {
				t.Fatal("no error")
			}
		})
	}
}
