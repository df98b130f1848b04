package memberconf

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/etcd/server/v3/embed"
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
		if got := QuoteEnv(tt.in); got != tt.want {
			t.Errorf("QuoteEnv(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// systemd reads double-quoted values as a POSIX shell does (\ escapes only
// " \ ` $ there), so a shell must read back exactly the value we wrote.
func TestQuoteEnvRoundTrip(t *testing.T) {
	values := []string{"plain", "a b", `"q"`, `$HOME ${X}`, "`id`", `back\slash\n`, "it's", "#c ;d", "tab-free ünïcode"}
	for _, v := range values {
		file := filepath.Join(t.TempDir(), "env")
		if err := os.WriteFile(file, []byte("V="+QuoteEnv(v)+"\n"), 0o600); err != nil {
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

var update = flag.Bool("update", false, "rewrite the golden files")

// TestRender checks the three renderings of one member against golden files
// (run with -update to rewrite them) and that etcd's own config parser reads
// the YAML back.
func TestRender(t *testing.T) {
	m := Member{
		Name: "infra1", DataDir: "/var/lib/etcd/infra 1", WALDir: "/srv/wal",
		ListenClientURLs: "https://10.0.0.1:2379,https://127.0.0.1:2379", AdvertiseClientURLs: "https://10.0.0.1:2379",
		ListenPeerURLs: "https://10.0.0.1:2380", InitialAdvertisePeerURLs: "https://10.0.0.1:2380",
		InitialCluster: "infra0=https://10.0.0.0:2380,infra1=https://10.0.0.1:2380", InitialClusterState: "existing",
		InitialClusterToken: "tok",
		TLS: TLS{CertFile: "/pki/infra1.pem", KeyFile: "/pki/infra1-key.pem", TrustedCAFile: "/pki/ca.pem", ClientCertAuth: true,
			PeerCertFile: "/pki/peer.pem", PeerKeyFile: "/pki/peer-key.pem", PeerTrustedCAFile: "/pki/ca.pem", PeerClientCertAuth: true},
		Env: []string{"ETCD_SNAPSHOT_COUNT=10000", "ETCD_AUTO_COMPACTION_RETENTION=1h"},
	}
	yml := m.YAML("member infra1", "")
	golden(t, "infra1.yml", yml)
	golden(t, "infra1.env", m.EnvFile("member infra1"))
	golden(t, "infra1.flags", []byte(strings.Join(m.Flags(), "\n")+"\n"))

	file := filepath.Join(t.TempDir(), "infra1.yml")
	if err := os.WriteFile(file, yml, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := embed.ConfigFromFile(file)
	if err != nil {
		t.Fatalf("etcd reads the YAML: %v", err)
	}
	if cfg.Name != m.Name || cfg.Dir != m.DataDir || cfg.WalDir != m.WALDir || cfg.InitialCluster != m.InitialCluster ||
		cfg.ClusterState != "existing" || !cfg.ClientTLSInfo.ClientCertAuth || !cfg.PeerTLSInfo.ClientCertAuth ||
		cfg.PeerTLSInfo.KeyFile != m.TLS.PeerKeyFile || len(cfg.ListenClientUrls) != 2 {
		t.Errorf("etcd read %+v", cfg)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from its golden file:\n%s", name, got)
	}
}
