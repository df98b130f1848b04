package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryUsageErrorExitsTwo runs the binary with the input errors that every command can meet
// before it does anything: a flag that is not defined, a value that does not parse, a required
// flag missing, an argument too many, a command that does not exist. health exits 3 instead
// (UNKNOWN, as a Nagios plugin must for bad arguments).
func TestEveryUsageErrorExitsTwo(t *testing.T) {
	bucket := "file://" + t.TempDir()
	dst := filepath.Join(t.TempDir(), "s.db")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"nosuch"}, "nosuch"},
		{[]string{"backup", "nosuch"}, "nosuch"},
		{[]string{"systemd", "nosuch"}, "nosuch"},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
		{[]string{"serve", "--no-such-flag"}, "no-such-flag"},
		{[]string{"serve", "extra"}, "extra"},
		{[]string{"serve", "--heartbeat-interval", "x"}, "heartbeat-interval"},
		{[]string{"backup", "save", "--no-such-flag"}, "no-such-flag"},
		{[]string{"backup", "save"}, "--to: required"},
		{[]string{"backup", "save", "--to", bucket, "--dial-timeout", "x"}, "dial-timeout"},
		{[]string{"backup", "save", "--to", bucket, "--keep-within", "x"}, "keep-within"},
		{[]string{"backup", "save", "--to", bucket, "extra"}, `unexpected argument "extra"`},
		{[]string{"backup", "save", "--to", "ftp://x"}, `--to "ftp://x": unknown scheme`},
		{[]string{"backup", "save", "--to", "::"}, `--to "<unparsable URL>": expected scheme://bucket`},
		{[]string{"backup", "list"}, "--from: required"},
		{[]string{"backup", "list", "--from", bucket, "extra"}, `unexpected argument "extra"`},
		{[]string{"backup", "list", "--from", "ftp://x"}, `--from "ftp://x": unknown scheme`},
		{[]string{"backup", "verify", "--from", bucket, "a", "b"}, `unexpected argument "b"`},
		{[]string{"backup", "verify", "--from", bucket, "bogus"}, `snapshot "bogus"`},
		{[]string{"backup", "verify", "--from", bucket, "--identity", "/nonexistent"}, `--identity "/nonexistent"`},
		{[]string{"backup", "fetch", "--from", bucket, "latest"}, "--to: required"},
		{[]string{"backup", "fetch", "--to", dst, "latest"}, "--from: required"},
		{[]string{"backup", "prune", "--from", bucket}, "no --keep-*"},
		{[]string{"backup", "prune", "--from", bucket, "--keep-last", "-1"}, `--keep-last "-1"`},
		{[]string{"backup", "prune", "--from", bucket, "--keep-within", "-1h"}, `--keep-within "-1h0m0s"`},
		{[]string{"backup", "prune", "--from", bucket, "--keep-daily", "1.5"}, "keep-daily"},
		{[]string{"restore", "--no-such-flag"}, "no-such-flag"},
		{[]string{"restore", "--from", dst}, "--initial-cluster"},
		{[]string{"systemd", "unit", "--no-such-flag"}, "no-such-flag"},
		{[]string{"systemd", "unit", "--name", "a", "extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, errOut, code := runEtcdops(t, nil, tt.args...)
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if code != exitUsage || len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and one line containing %q", code, errOut, tt.want)
			}
		})
	}
	for _, args := range [][]string{{"health", "--no-such-flag"}, {"health", "--command-timeout", "x"}, {"health", "extra"}} {
		if _, errOut, code := runEtcdops(t, nil, args...); code != exitHealthUnknown {
			t.Errorf("%q: exit %d, want %d\n%s", args, code, exitHealthUnknown, errOut)
		}
	}
}
