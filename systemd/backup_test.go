package systemd

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goldenBackups are the backups whose units are kept in testdata/<name>/.
var goldenBackups = map[string]Backup{
	"backup-schedule": {Name: "prod", Args: []string{"--endpoints", "https://10.0.0.1:2379,https://10.0.0.2:2379",
		"--cron", "0 * * * *", "--to", "s3://etcd-backups?prefix=prod/", "--tag", "prod", "--compress",
		"--keep-hourly", "48", "--metrics-addr", "127.0.0.1:9479", "--max-age", "2h"}},
	"backup-timer": {Name: "prod", Timer: true, OnCalendar: "*-*-* *:00:00", RandomizedDelay: "10min",
		Args: []string{"--to", "file:///srv/etcd-backups", "--tag", "prod", "--keep-daily", "14"}},
}

func backupFiles(t *testing.T, b Backup) []File {
	t.Helper()
	b.SetDefaults()
	files, err := b.Files()
	if err != nil {
		t.Fatalf("Files: %v", err)
	}
	return files
}

func TestBackupGolden(t *testing.T) {
	for dir, b := range goldenBackups {
		for _, f := range backupFiles(t, b) {
			golden := filepath.Join("testdata", dir, filepath.Base(f.Path))
			if *update {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, f.Data, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(f.Data, want) {
				t.Errorf("%s differs from %s (go test -update rewrites it):\n%s", f.Path, golden, f.Data)
			}
		}
	}
}

// Both kinds of backup units pass systemd-analyze verify, the timer with
// its service beside it.
func TestBackupSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is needed to verify the units: %v", err)
	}
	binary, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	binary, _ = filepath.EvalSymlinks(binary)
	for name, b := range goldenBackups {
		t.Run(name, func(t *testing.T) {
			b.Binary, b.EnvFile = binary, filepath.Join(t.TempDir(), "backup.env")
			root := t.TempDir()
			files := backupFiles(t, b)
			if err := Install(root, files, false); err != nil {
				t.Fatal(err)
			}
			args := []string{"verify"}
			for _, f := range files {
				args = append(args, filepath.Join(root, f.Path))
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, analyze, args...)
			cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0", "SYSTEMD_PAGER=")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
			}
			for _, line := range strings.Split(string(out), "\n") {
				if strings.Contains(line, "etcdops-backup-") {
					t.Errorf("systemd-analyze verify warns: %s", line)
				}
			}
		})
	}
}

func TestBackupValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Backup
		want string
	}{
		{"bad name", Backup{Name: "a/b", Args: []string{"--cron", "@hourly"}}, `name "a/b"`},
		{"no flags", Backup{Name: "a"}, "no etcdops flags"},
		{"daemon without cron", Backup{Name: "a", Args: []string{"--to", "mem://"}}, "needs --cron or --config"},
		{"timer with cron", Backup{Name: "a", Timer: true, Args: []string{"--cron=@hourly"}}, "--cron/--config: the timer schedules"},
		{"timer with defrag-cron", Backup{Name: "a", Timer: true, Args: []string{"--defrag-cron", "@daily"}}, "--defrag-cron: the timer runs backup save"},
		{"calendar without timer", Backup{Name: "a", OnCalendar: "daily", Args: []string{"--cron", "@daily"}}, "add the timer"},
		{"percent in calendar", Backup{Name: "a", Timer: true, OnCalendar: "%H", Args: []string{"--to", "mem://"}}, "without %"},
	} {
		tc.b.SetDefaults()
		if err := tc.b.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	defragOnly := Backup{Name: "a", Args: []string{"--endpoints", "http://127.0.0.1:2379", "--defrag-cron", "@daily"}}
	defragOnly.SetDefaults()
	if err := defragOnly.Validate(); err != nil {
		t.Errorf("a daemon with --defrag-cron alone: %v", err)
	}
}

func TestExecLine(t *testing.T) {
	for in, want := range map[string]string{
		"--cron|0 * * * *":                   `--cron "0 * * * *"`,
		"--to|s3://b?prefix=p/":              `--to s3://b?prefix=p/`,
		`--tag|a"b\c`:                        `--tag "a\"b\\c"`,
		"--heartbeat-url|https://x/%20$HOME": `--heartbeat-url https://x/%%20$$HOME`,
	} {
		if got := execLine(strings.Split(in, "|")); got != want {
			t.Errorf("execLine(%q) = %s, want %s", in, got, want)
		}
	}
}
