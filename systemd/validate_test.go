package systemd

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(m *Member)
		flag   string // flag named by the error; "" if valid
	}{
		{"tls member", func(m *Member) {}, ""},
		{"default member", func(m *Member) { *m = Member{Name: "infra1"} }, ""},
		{"name with dots", func(m *Member) { m.Name, m.InitialCluster = "etcd-1.example", "" }, ""},
		{"name with space", func(m *Member) { m.Name = "etcd 1" }, "name"},
		{"name with slash", func(m *Member) { m.Name = "a/b" }, "name"},
		{"name starting with dash", func(m *Member) { m.Name = "-a" }, "name"},
		{"name too long", func(m *Member) { m.Name = strings.Repeat("a", 64) }, "name"},
		{"relative data dir", func(m *Member) { m.DataDir = "var/lib/etcd" }, "data-dir"},
		{"unclean data dir", func(m *Member) { m.DataDir = "/var/lib/etcd/" }, "data-dir"},
		{"root data dir", func(m *Member) { m.DataDir = "/" }, "data-dir"},
		{"data dir with space", func(m *Member) { m.DataDir = "/var/lib/my etcd" }, "data-dir"},
		{"data dir with specifier", func(m *Member) { m.DataDir = "/var/lib/%n" }, "data-dir"},
		{"data dir in /tmp", func(m *Member) { m.DataDir = "/tmp/etcd" }, "data-dir"},
		{"relative wal dir", func(m *Member) { m.WALDir = "wal" }, "wal-dir"},
		{"wal dir in /var/tmp", func(m *Member) { m.WALDir = "/var/tmp/wal" }, "wal-dir"},
		{"unix socket URL", func(m *Member) { m.ListenClientURLs = "unix:///run/etcd.sock" }, ""},
		{"URL without port", func(m *Member) { m.ListenClientURLs = "https://10.0.0.1" }, "listen-client-urls"},
		{"URL with path", func(m *Member) { m.AdvertiseClientURLs = "https://10.0.0.1:2379/x" }, "advertise-client-urls"},
		{"URL scheme", func(m *Member) { m.ListenPeerURLs = "tcp://10.0.0.1:2380" }, "listen-peer-urls"},
		{"URL list with empty", func(m *Member) { m.InitialAdvertisePeerURLs = "https://10.0.0.1:2380," }, "initial-advertise-peer-urls"},
		{"listen without advertise", func(m *Member) { m.AdvertiseClientURLs = "" }, "advertise-client-urls"},
		{"initial cluster syntax", func(m *Member) { m.InitialCluster = "infra1:https://10.0.0.1:2380" }, "initial-cluster"},
		{"initial cluster without member", func(m *Member) { m.InitialCluster = "infra2=https://10.0.0.2:2380" }, "initial-cluster"},
		{"cluster state existing", func(m *Member) { m.InitialClusterState = "existing" }, ""},
		{"cluster state", func(m *Member) { m.InitialClusterState = "New" }, "initial-cluster-state"},
		{"token with newline", func(m *Member) { m.InitialClusterToken = "a\nETCD_NAME=x" }, "initial-cluster-token"},
		{"relative cert", func(m *Member) { m.CertFile = "pki/c.pem" }, "cert-file"},
		{"cert without key", func(m *Member) { m.KeyFile = "" }, "key-file"},
		{"peer key without cert", func(m *Member) { m.PeerCertFile = "" }, "peer-cert-file"},
		{"CA in /tmp", func(m *Member) { m.PeerTrustedCAFile = "/tmp/ca.pem" }, "peer-trusted-ca-file"},
		{"cert path with space", func(m *Member) { m.CertFile = "/etc/my pki/c.pem" }, ""},
		{"env value with comma and space", func(m *Member) { m.Env = []string{"ETCD_LOG_OUTPUTS=stderr,/var/log/a b"} }, ""},
		{"env without =", func(m *Member) { m.Env = []string{"ETCD_LOG_LEVEL"} }, "env"},
		{"env lower case", func(m *Member) { m.Env = []string{"etcd_log_level=warn"} }, "env"},
		{"env without prefix", func(m *Member) { m.Env = []string{"GOMAXPROCS=4"} }, "env"},
		{"env with own flag", func(m *Member) { m.Env = []string{"ETCD_NAME=x"} }, "env"},
		{"env config file", func(m *Member) { m.Env = []string{"ETCD_CONFIG_FILE=/etc/etcd.yaml"} }, "env"},
		{"env unknown setting", func(m *Member) { m.Env = []string{"ETCD_SNAPSHOTCOUNT=1"} }, "env"},
		{"env twice", func(m *Member) { m.Env = []string{"ETCD_LOG_LEVEL=warn", "ETCD_LOG_LEVEL=info"} }, "env"},
		{"env empty value", func(m *Member) { m.Env = []string{"ETCD_LOG_LEVEL="} }, "env"},
		{"env value with newline", func(m *Member) { m.Env = []string{"ETCD_LOG_LEVEL=warn\nETCD_NAME=x"} }, "env"},
		{"env cluster state flag of etcdmain", func(m *Member) { m.Env = []string{"ETCD_DISCOVERY_FALLBACK=exit"} }, ""},
		{"relative binary", func(m *Member) { m.Binary = "etcdops" }, "binary"},
		{"binary in /tmp", func(m *Member) { m.Binary = "/tmp/etcdops" }, "binary"},
		{"user with space", func(m *Member) { m.User = "etcd user" }, "user"},
		{"numeric group", func(m *Member) { m.Group = "0" }, "group"},
		{"unit name", func(m *Member) { m.UnitName = "etcd.service" }, ""},
		{"unit name not a service", func(m *Member) { m.UnitName = "etcd.timer" }, "unit-name"},
		{"unit name template", func(m *Member) { m.UnitName = "etcd@a.service" }, "unit-name"},
		{"unit name with slash", func(m *Member) { m.UnitName = "../etcd.service" }, "unit-name"},
		{"relative env file", func(m *Member) { m.EnvFile = "etc/a.env" }, "env-file"},
		{"env file with quote", func(m *Member) { m.EnvFile = `/etc/"a".env` }, "env-file"},
		{"env file in /tmp", func(m *Member) { m.EnvFile = "/tmp/a.env" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tlsMember()
			tt.change(&m)
			if err := m.SetDefaults(); err != nil {
				t.Fatal(err)
			}
			err := m.Validate()
			var ve *ValidationError
			switch {
			case tt.flag == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.flag == "":
				if _, err := m.Files(); err != nil {
					t.Fatalf("Files: %v", err)
				}
			case !errors.As(err, &ve):
				t.Fatalf("got %v, want a *ValidationError for %s", err, tt.flag)
			case ve.Setting != tt.flag:
				t.Fatalf("got %v, want an error for %s", err, tt.flag)
			case strings.ContainsAny(err.Error(), "\n"):
				t.Fatalf("error is not one line: %q", err)
			case !strings.HasPrefix(err.Error(), tt.flag+" "):
				t.Fatalf("error %q does not start with the setting", err)
			}
		})
	}
}

// Values of --env may be secrets: errors name the variable, not its value.
func TestValidateEnvHidesValue(t *testing.T) {
	m := Member{Name: "a", Env: []string{"ETCD_DISCOVERY_PASSWORD=s3cr\x01t"}}
	if err := m.SetDefaults(); err != nil {
		t.Fatal(err)
	}
	err := m.Validate()
	if err == nil || strings.Contains(err.Error(), "s3cr") {
		t.Fatalf("got %v, want an error that does not show the value", err)
	}
}
