package systemd

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// systemdAnalyze runs `systemd-analyze verify` on a unit file and returns
// the lines of its output that are about that unit.
func systemdAnalyze(t *testing.T, unit string) []string {
	t.Helper()
	// Not skipped when missing: the units must be checked wherever tests run.
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is needed to verify the units: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, analyze, "verify", unit)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0", "SYSTEMD_PAGER=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
	var about []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, filepath.Base(unit)) {
			about = append(about, line)
		}
	}
	return about
}

// systemd-analyze verify checks the directives and that ExecStart's binary
// exists, so the members point it at an executable of this machine. It does
// not look below a --root (it wants a whole system there): the unit is
// checked by its path, and the paths in it are made to exist on this machine.
func TestSystemdAnalyzeVerify(t *testing.T) {
	binary, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	if binary, err = filepath.EvalSymlinks(binary); err != nil {
		t.Fatal(err)
	}
	members := map[string]Member{
		"home":  {Name: "dev", DataDir: "/root/etcd", User: "kv", Group: "ops"},
		"named": {Name: "infra2", UnitName: "etcd.service"},
	}
	for name, m := range goldenMembers {
		members[name] = m
	}
	for name, m := range members {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			m.Binary = binary
			m.EnvFile = filepath.Join(t.TempDir(), m.Name+".env")
			files := memberFiles(t, m)
			if err := Install(root, files, false); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(m.EnvFile, files[1].Data, 0o600); err != nil {
				t.Fatal(err)
			}
			if warnings := systemdAnalyze(t, filepath.Join(root, files[0].Path)); len(warnings) > 0 {
				t.Errorf("systemd-analyze verify warns about the unit:\n%s", strings.Join(warnings, "\n"))
			}
		})
	}
}

// The test above passes only if systemd-analyze reports a broken unit.
func TestSystemdAnalyzeVerifyWarns(t *testing.T) {
	unit := filepath.Join(t.TempDir(), "etcdops-bad.service")
	data := "[Service]\nType=notify\nExecStart=/bin/sh -c true\nNoSuchDirective=yes\n"
	if err := os.WriteFile(unit, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if warnings := systemdAnalyze(t, unit); len(warnings) == 0 {
		t.Error("systemd-analyze verify does not warn about an unknown directive")
	}
}
