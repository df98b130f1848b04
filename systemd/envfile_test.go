package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestQuoteEnv(t *testing.T) {
	tests := []struct{ in, want string }{
		{"infra1", "infra1"},
		{"a=https://10.0.0.1:2380,b=https://[::1]:2380", `"a=https://10.0.0.1:2380,b=https://[::1]:2380"`},
		{"/var/lib/etcd/infra1", "/var/lib/etcd/infra1"},
		{"", `""`},
		{"a b", `"a b"`},
		{"it's", `"it's"`},
		{`say "hi"`, `"say \"hi\""`},
		{`$HOME`, `"\$HOME"`},
		{"`id`", "\"\\`id\\`\""},
		{`C:\x`, `"C:\\x"`},
		{"#x", `"#x"`},
		{"µ", `"µ"`},
	}
	for _, tt := range tests {
		if got := quoteEnv(tt.in); got != tt.want {
			t.Errorf("quoteEnv(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// systemd reads double-quoted values as a POSIX shell does (\ escapes only
// " \ ` $ there), so a shell must read back exactly the value we wrote.
func TestQuoteEnvRoundTrip(t *testing.T) {
	values := []string{"plain", "a b", `"q"`, `$HOME ${X}`, "`id`", `back\slash\n`, "it's", "#c ;d", "tab-free ünïcode"}
	for _, v := range values {
		file := filepath.Join(t.TempDir(), "env")
		if err := os.WriteFile(file, []byte("V="+quoteEnv(v)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("/bin/sh", "-c", `. "$0" && printf %s "$V"`, file).Output()
		if err != nil {
			t.Fatalf("sh: %v", err)
		}
		if string(out) != v {
			t.Errorf("value %q read back as %q", v, out)
		}
	}
}
