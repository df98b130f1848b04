package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runSystemdUnit(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, io.Discard
	err := app.Run(append([]string{"etcdops", "systemd", "unit"}, args...))
	return out.String(), err
}

func TestSystemdUnitPrint(t *testing.T) {
	out, err := runSystemdUnit(t, "--name", "infra1", "--env", "ETCD_LOG_OUTPUTS=stderr,/var/log/etcd.log")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# /etc/systemd/system/etcdops-infra1.service\n",
		"\n# /etc/etcdops/infra1.env\n",
		"ExecStart=/usr/local/bin/etcdops serve\n",
		"ETCD_LOG_OUTPUTS=stderr,/var/log/etcd.log\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestSystemdUnitInstall(t *testing.T) {
	root := t.TempDir()
	out, err := runSystemdUnit(t, "--name", "infra1", "--install", "--root", root)
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(root, "etc/systemd/system/etcdops-infra1.service")
	if _, err := os.Stat(unit); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"wrote " + unit + "\n", "systemctl daemon-reload && systemctl enable --now etcdops-infra1.service\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	_, err = runSystemdUnit(t, "--name", "infra1", "--data-dir", "/srv/etcd", "--install", "--root", root)
	var ee *exitError
	if err == nil || errors.As(err, &ee) {
		t.Fatalf("replacing a different unit: got %v, want a plain failure", err)
	}
	if _, err := runSystemdUnit(t, "--name", "infra1", "--data-dir", "/srv/etcd", "--install", "--root", root, "--force"); err != nil {
		t.Fatalf("with --force: %v", err)
	}
}

func TestSystemdUnitUsageErrors(t *testing.T) {
	tests := [][]string{
		{"--name", "a b"},
		{"--name", "a", "--initial-cluster-state", "old"},
		{"--name", "a", "--env", "ETCD_LOG_LEVEL"},
		{"--name", "a", "--root", "/tmp/x"},
		{"--name", "a", "--force"},
		{"--name", "a", "extra"},
		{"--no-such-flag"},
	}
	for _, args := range tests {
		_, err := runSystemdUnit(t, args...)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != exitUsage {
			t.Errorf("%q: got %v, want a usage error", args, err)
		}
	}
}
