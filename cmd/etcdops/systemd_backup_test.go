package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSystemdBackup(t *testing.T) {
	out, errOut, code := runEtcdops(t, nil, "systemd", "backup", "--name", "prod", "--timer", "--on-calendar", "hourly",
		"--", "--to", "s3://b?prefix=p/", "--tag", "prod", "--keep-daily", "14")
	if code != 0 || !strings.Contains(out, "# /etc/systemd/system/etcdops-backup-prod.timer\n") ||
		!strings.Contains(out, "ExecStart=/usr/local/bin/etcdops backup save --to s3://b?prefix=p/ --tag prod --keep-daily 14\n") ||
		!strings.Contains(out, "Persistent=true\n") || !strings.Contains(out, "RandomizedDelaySec=5min\n") {
		t.Errorf("exit %d %s\n%s", code, errOut, out)
	}
	root := t.TempDir()
	out, errOut, code = runEtcdops(t, nil, "systemd", "backup", "--name", "prod", "--install", "--root", root,
		"--", "--cron", "@hourly", "--to", "s3://b")
	if code != 0 || !strings.Contains(out, "systemctl enable --now etcdops-backup-prod.service") {
		t.Errorf("install: exit %d %s\n%s", code, errOut, out)
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/etcdops-backup-prod.service")); err != nil ||
		!strings.Contains(string(b), "etcdops schedule --cron @hourly --to s3://b") {
		t.Errorf("installed unit: %v\n%s", err, b)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "a"}, "no etcdops flags"},
		{[]string{"--name", "a", "--timer", "--", "--cron", "@hourly", "--to", "mem://"}, "the timer schedules backup save"},
		{[]string{"--name", "a", "--", "--to", "mem://"}, "needs --cron or --config"},
		{[]string{"--name", "a", "--force", "--", "--cron", "@hourly"}, "--force: expected only with --install"},
	} {
		_, errOut, code := runEtcdops(t, nil, append([]string{"systemd", "backup"}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d %q, want 2 with %q", tc.args, code, errOut, tc.want)
		}
	}
}
