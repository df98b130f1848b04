package server

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/etcd/server/v3/embed"
)

// clearEtcdEnv keeps the developer's ETCD_* variables out of a test.
func clearEtcdEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "ETCD_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseDefaultsMatchEtcd(t *testing.T) {
	clearEtcdEnv(t)
	cfg, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	ec := cfg.Embed
	if ec.Name != "default" || ec.Dir != "" || ec.ClusterState != "new" {
		t.Errorf("name %q dir %q state %q, want etcd's defaults", ec.Name, ec.Dir, ec.ClusterState)
	}
	if got := ec.ListenClientUrls[0].String(); got != embed.DefaultListenClientURLs {
		t.Errorf("listen client %s, want %s", got, embed.DefaultListenClientURLs)
	}
	if got := ec.ListenPeerUrls[0].String(); got != embed.DefaultListenPeerURLs {
		t.Errorf("listen peer %s, want %s", got, embed.DefaultListenPeerURLs)
	}
	if cfg.PrintVersion || cfg.ConfigFile != "" || len(cfg.Warnings) != 0 {
		t.Errorf("unexpected %+v", cfg)
	}
}

func TestParseFlagsAndEnv(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(*embed.Config) bool
	}{
		{"flag", []string{"--name=a", "--data-dir=/d", "--snapshot-count=77", "--quota-backend-bytes=1024"}, nil,
			func(c *embed.Config) bool {
				return c.Name == "a" && c.Dir == "/d" && c.SnapshotCount == 77 && c.QuotaBackendBytes == 1024
			}},
		{"single dash and space", []string{"-name", "b", "-heartbeat-interval", "50", "-election-timeout", "600"}, nil,
			func(c *embed.Config) bool { return c.Name == "b" && c.TickMs == 50 && c.ElectionMs == 600 }},
		{"env", nil, map[string]string{"ETCD_NAME": "envname", "ETCD_MAX_LEARNERS": "3", "ETCD_STRICT_RECONFIG_CHECK": "false"},
			func(c *embed.Config) bool { return c.Name == "envname" && c.MaxLearners == 3 && !c.StrictReconfigCheck }},
		{"bool without value", []string{"--client-cert-auth", "--peer-client-cert-auth"}, nil,
			func(c *embed.Config) bool { return c.ClientTLSInfo.ClientCertAuth && c.PeerTLSInfo.ClientCertAuth }},
		{"flag given twice: last wins", []string{"--name=one", "--name=two"}, nil,
			func(c *embed.Config) bool { return c.Name == "two" }},
		{"url list given twice: last wins", []string{"--listen-client-urls=http://127.0.0.1:1", "--listen-client-urls=http://127.0.0.1:2",
			"--advertise-client-urls=http://127.0.0.1:2"}, nil,
			func(c *embed.Config) bool {
				return len(c.ListenClientUrls) == 1 && c.ListenClientUrls[0].Host == "127.0.0.1:2"
			}},
		{"listen without advertise clears advertise", []string{"--listen-client-urls=http://127.0.0.1:1"}, nil, nil},
		{"unix urls", []string{"--listen-client-urls=unix://localhost:27001", "--advertise-client-urls=unix://localhost:27001",
			"--listen-peer-urls=unix://localhost:27002", "--initial-advertise-peer-urls=unix://localhost:27002",
			"--initial-cluster=default=unix://localhost:27002"}, nil,
			func(c *embed.Config) bool {
				return c.ListenClientUrls[0].Scheme == "unix" && c.AdvertisePeerUrls[0].Host == "localhost:27002"
			}},
		{"auto compaction and auth token", []string{"--auto-compaction-mode=revision", "--auto-compaction-retention=100", "--auth-token=simple"}, nil,
			func(c *embed.Config) bool {
				return c.AutoCompactionMode == "revision" && c.AutoCompactionRetention == "100" && c.AuthToken == "simple"
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEtcdEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := Parse(tt.args)
			if tt.check == nil {
				// etcd refuses to advertise a default it no longer listens on.
				if err == nil || !strings.Contains(err.Error(), "advertise-client-urls") {
					t.Fatalf("err %v, want one about --advertise-client-urls", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(cfg.Embed) {
				t.Errorf("config does not reflect %v %v", tt.args, tt.env)
			}
		})
	}
}

func TestParseExperimentalFlagsMapped(t *testing.T) {
	clearEtcdEnv(t)
	cfg, err := Parse([]string{"--experimental-compaction-batch-limit=42", "--experimental-memory-mlock",
		"--experimental-snapshot-catchup-entries=1234", "--experimental-warning-unary-request-duration=2s"})
	if err != nil {
		t.Fatal(err)
	}
	ec := cfg.Embed
	if ec.CompactionBatchLimit != 42 || !ec.MemoryMlock || ec.SnapshotCatchUpEntries != 1234 || ec.WarningUnaryRequestDuration.String() != "2s" {
		t.Errorf("experimental flags not mapped: %d %v %d %v", ec.CompactionBatchLimit, ec.MemoryMlock, ec.SnapshotCatchUpEntries, ec.WarningUnaryRequestDuration)
	}
	for _, want := range []string{deprecationWarnings["experimental-compaction-batch-limit"], deprecationWarnings["experimental-memory-mlock"],
		deprecationWarnings["experimental-snapshot-catchup-entries"], unaryDurationWarning} {
		if !slices.Contains(cfg.Warnings, want) {
			t.Errorf("warnings %q lack %q", cfg.Warnings, want)
		}
	}
	if _, err := Parse([]string{"--experimental-compaction-batch-limit=1", "--compaction-batch-limit=2"}); err == nil ||
		!strings.Contains(err.Error(), "cannot set --experimental-compaction-batch-limit and --compaction-batch-limit") {
		t.Errorf("old and new name together: %v, want etcd's conflict error", err)
	}
}

// seedConfig is the operator notes' etcd-conf.yml, on loopback.
const seedConfig = `# 节点名字
name: linux1
data-dir: /root/software/etcd/data
listen-client-urls: http://127.0.0.1:2379
advertise-client-urls: http://127.0.0.1:2379
listen-peer-urls: http://127.0.0.1:2380
initial-advertise-peer-urls: http://127.0.0.1:2380
initial-cluster: linux1=http://127.0.0.1:2380,linux2=http://127.0.0.2:2380,linux3=http://127.0.0.3:2380
initial-cluster-token: etcd-cluster-token
initial-cluster-state: new
experimental-compaction-batch-limit: 9
client-transport-security:
  client-cert-auth: true
  trusted-ca-file: /etc/etcd/ca.pem
`

func TestParseConfigFile(t *testing.T) {
	clearEtcdEnv(t)
	path := writeFile(t, "etcd-conf.yml", seedConfig)
	t.Setenv("ETCD_NAME", "ignored")
	cfg, err := Parse([]string{"--config-file", path, "--snapshot-count=5"})
	if err != nil {
		t.Fatal(err)
	}
	ec := cfg.Embed
	if ec.Name != "linux1" || ec.Dir != "/root/software/etcd/data" || ec.InitialClusterToken != "etcd-cluster-token" ||
		!ec.ClientTLSInfo.ClientCertAuth || ec.ClientTLSInfo.TrustedCAFile != "/etc/etcd/ca.pem" || ec.CompactionBatchLimit != 9 {
		t.Errorf("config file not applied: %+v", ec)
	}
	if ec.SnapshotCount == 5 {
		t.Error("a flag given with --config-file was applied; etcd ignores it")
	}
	if want := []string{"--snapshot-count", "ETCD_NAME"}; !slices.Equal(cfg.Overridden, want) {
		t.Errorf("overridden %q, want %q", cfg.Overridden, want)
	}
	if !slices.Contains(cfg.Warnings, deprecationWarnings["experimental-compaction-batch-limit"]) {
		t.Errorf("no deprecation warning for the file's experimental key: %q", cfg.Warnings)
	}

	t.Setenv("ETCD_CONFIG_FILE", path)
	cfg, err = Parse(nil)
	if err != nil || cfg.Embed.Name != "linux1" {
		t.Fatalf("ETCD_CONFIG_FILE: %v %+v", err, cfg)
	}
}

func TestParseRejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		file string // config file content, passed with --config-file
		want string
	}{
		{"malformed url", []string{"--listen-peer-urls=127.0.0.1:2380"}, "", "--listen-peer-urls"},
		{"bad scheme", []string{"--advertise-client-urls=ftp://127.0.0.1:1"}, "", "--advertise-client-urls"},
		{"cluster state", []string{"--initial-cluster-state=old"}, "", `--initial-cluster-state: invalid value "old", expected one of existing, new`},
		{"unknown flag", []string{"--nmae=x"}, "", "unknown flag --nmae"},
		{"positional", []string{"serve"}, "", `"serve" is not a valid flag`},
		{"flag needs value", []string{"--name"}, "", "--name: expected a value"},
		{"bool", []string{"--client-cert-auth=yes"}, "", "--client-cert-auth: invalid value \"yes\", expected true or false"},
		{"number", []string{"--snapshot-count=many"}, "", "--snapshot-count"},
		{"log level", []string{"--log-level=loud"}, "", `--log-level: invalid value "loud"`},
		{"log level in file", nil, "log-level: loud\n", `log-level: invalid value "loud"`},
		{"flag and env both", []string{"--name=a"}, "", "--name is also set by ETCD_NAME"},
		{"missing config file", []string{"--config-file=" + filepath.Join(dir, "nope.yml")}, "", "--config-file: open"},
		{"config dir", []string{"--config-file=" + dir}, "", "--config-file"},
		{"malformed yaml", nil, "name: [a\n", "config file"},
		{"unknown key", nil, "name: a\nlisten-clinet-urls: http://127.0.0.1:2379\n", `unknown key "listen-clinet-urls"`},
		{"unknown tls key", nil, "client-transport-security:\n  cert: x\n", `client-transport-security: unknown key "cert"`},
		{"bad url in file", nil, "listen-peer-urls: 127.0.0.1:2380\n", "listen-peer-urls"},
		{"bad state in file", nil, "initial-cluster-state: old\n", "old"},
		{"wrong type in file", nil, "snapshot-count: lots\n", "snapshot-count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEtcdEnv(t)
			t.Setenv("ETCD_NAME", "b")
			args := tt.args
			if tt.file != "" {
				args = append(args, "--config-file", writeFile(t, "c.yml", tt.file))
			}
			_, err := Parse(args)
			if err == nil {
				t.Fatalf("Parse(%q) accepted bad input", args)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line containing %q", msg, tt.want)
			}
		})
	}
}

// fullConfig sets most keys of etcd's sample configuration, including the
// legacy ones etcd 3.6 still accepts and ignores.
const fullConfig = `name: 'full'
data-dir:
wal-dir:
snapshot-count: 10000
heartbeat-interval: 100
election-timeout: 1000
quota-backend-bytes: 0
listen-peer-urls: http://localhost:2380
listen-client-urls: http://localhost:2379
max-snapshots: 5
max-wals: 5
cors:
initial-advertise-peer-urls: http://localhost:2380
advertise-client-urls: http://localhost:2379
discovery:
discovery-fallback: 'proxy'
discovery-proxy:
discovery-srv:
initial-cluster:
initial-cluster-token: 'etcd-cluster'
initial-cluster-state: 'new'
strict-reconfig-check: false
enable-pprof: true
proxy: 'off'
proxy-failure-wait: 5000
proxy-refresh-interval: 30000
proxy-dial-timeout: 1000
proxy-write-timeout: 5000
proxy-read-timeout: 0
client-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
peer-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
  allowed-cn:
  allowed-hostname:
self-signed-cert-validity: 1
log-level: warn
logger: zap
log-outputs: [stderr]
force-new-cluster: false
auto-compaction-mode: periodic
auto-compaction-retention: "1"
cipher-suites: [
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
]
tls-min-version: 'TLS1.2'
tls-max-version: 'TLS1.3'
max-learners: 2
`

func TestParseFullSampleConfig(t *testing.T) {
	clearEtcdEnv(t)
	cfg, err := Parse([]string{"--config-file", writeFile(t, "full.yml", fullConfig)})
	if err != nil {
		t.Fatal(err)
	}
	if ec := cfg.Embed; ec.Name != "full" || ec.MaxLearners != 2 || len(ec.CipherSuites) != 2 || ec.AutoCompactionMode != "periodic" {
		t.Errorf("config not applied: %+v", ec)
	}
	if !slices.Contains(cfg.Warnings, `config file key "proxy" is no longer read by etcd 3.6; ignoring it`) {
		t.Errorf("no warning for a legacy key: %q", cfg.Warnings)
	}
}
