package systemd

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenMembers are the members whose files are kept in testdata/<name>/.
var goldenMembers = map[string]Member{
	"default": {Name: "infra1"},
	"tls":     tlsMember(),
}

// tlsMember is the first member of a three-member cluster with TLS for
// clients and peers, a dedicated WAL disk and extra etcd settings.
func tlsMember() Member {
	return Member{
		Name:                     "infra1",
		WALDir:                   "/srv/etcd-wal/infra1",
		ListenClientURLs:         "https://10.0.0.1:2379,https://127.0.0.1:2379",
		AdvertiseClientURLs:      "https://10.0.0.1:2379",
		ListenPeerURLs:           "https://10.0.0.1:2380",
		InitialAdvertisePeerURLs: "https://10.0.0.1:2380",
		InitialCluster:           "infra1=https://10.0.0.1:2380,infra2=https://10.0.0.2:2380,infra3=https://10.0.0.3:2380",
		InitialClusterState:      "new",
		InitialClusterToken:      "prod-etcd-1",
		CertFile:                 "/etc/etcdops/pki/infra1.pem",
		KeyFile:                  "/etc/etcdops/pki/infra1-key.pem",
		TrustedCAFile:            "/etc/etcdops/pki/ca.pem",
		ClientCertAuth:           true,
		PeerCertFile:             "/etc/etcdops/pki/infra1-peer.pem",
		PeerKeyFile:              "/etc/etcdops/pki/infra1-peer-key.pem",
		PeerTrustedCAFile:        "/etc/etcdops/pki/ca.pem",
		PeerClientCertAuth:       true,
		Env: []string{
			"ETCD_QUOTA_BACKEND_BYTES=8589934592",
			"ETCD_LOG_LEVEL=warn",
			"ETCD_CIPHER_SUITES=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
			"ETCD_AUTO_COMPACTION_RETENTION=1h",
		},
		Binary: "/opt/etcdops/bin/etcdops",
	}
}

func memberFiles(t *testing.T, m Member) []File {
	t.Helper()
	if err := m.SetDefaults(); err != nil {
		t.Fatal(err)
	}
	files, err := m.Files()
	if err != nil {
		t.Fatalf("Files: %v", err)
	}
	return files
}

func TestMemberGolden(t *testing.T) {
	for name, m := range goldenMembers {
		t.Run(name, func(t *testing.T) {
			for _, f := range memberFiles(t, m) {
				golden := filepath.Join("testdata", name, filepath.Base(f.Path))
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
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
					t.Errorf("%s differs from %s (run go test -update if the change is intended):\n%s", f.Path, golden, f.Data)
				}
			}
		})
	}
}

func TestMemberFiles(t *testing.T) {
	files := memberFiles(t, Member{Name: "a"})
	want := []struct {
		path string
		mode os.FileMode
	}{
		{"/etc/systemd/system/etcdops-a.service", 0o644},
		{"/etc/etcdops/a.env", 0o600},
	}
	if len(files) != len(want) {
		t.Fatalf("got %d files, want %d", len(files), len(want))
	}
	for i, w := range want {
		if files[i].Path != w.path || files[i].Mode != w.mode {
			t.Errorf("file %d: got %s %v, want %s %v", i, files[i].Path, files[i].Mode, w.path, w.mode)
		}
	}
}

func TestMemberUnitSandbox(t *testing.T) {
	tests := []struct {
		name        string
		m           Member
		rw, state   []string
		protectHome string
	}{
		{"default", Member{Name: "a"}, []string{"/var/lib/etcd/a"}, []string{"etcd/a"}, "yes"},
		{"wal inside data dir", Member{Name: "a", WALDir: "/var/lib/etcd/a/wal"}, []string{"/var/lib/etcd/a"}, []string{"etcd/a"}, "yes"},
		{"wal on its own disk", Member{Name: "a", WALDir: "/srv/wal"}, []string{"/var/lib/etcd/a", "/srv/wal"}, []string{"etcd/a"}, "yes"},
		{"outside /var/lib", Member{Name: "a", DataDir: "/data/etcd"}, []string{"/data/etcd"}, nil, "yes"},
		{"binary in /root", Member{Name: "a", Binary: "/root/go/bin/etcdops"}, []string{"/var/lib/etcd/a"}, []string{"etcd/a"}, "read-only"},
		{"data in /home", Member{Name: "a", DataDir: "/home/etcd/data"}, []string{"/home/etcd/data"}, nil, "read-only"},
		{"homely prefix", Member{Name: "a", DataDir: "/homes/etcd"}, []string{"/homes/etcd"}, nil, "yes"},
		{"key in /root", Member{Name: "a", CertFile: "/etc/c.pem", KeyFile: "/root/k.pem"}, []string{"/var/lib/etcd/a"}, []string{"etcd/a"}, "read-only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.m.SetDefaults(); err != nil {
				t.Fatal(err)
			}
			u := tt.m.unit()
			if !reflect.DeepEqual(u.ReadWritePaths, tt.rw) || !reflect.DeepEqual(u.StateDirectories, tt.state) || u.ProtectHome != tt.protectHome {
				t.Errorf("got ReadWritePaths=%q StateDirectory=%q ProtectHome=%s, want %q %q %s",
					u.ReadWritePaths, u.StateDirectories, u.ProtectHome, tt.rw, tt.state, tt.protectHome)
			}
		})
	}
}

func TestMemberNextSteps(t *testing.T) {
	const user = "getent passwd etcd >/dev/null || useradd --system --user-group --no-create-home --shell /usr/sbin/nologin etcd"
	tests := []struct {
		name string
		m    Member
		want []string
	}{
		{"default", Member{Name: "a"}, []string{user, "systemctl daemon-reload && systemctl enable --now etcdops-a.service"}},
		{"new cluster of three", tlsMember(), []string{
			user,
			"install -d -m 0700 -o etcd -g etcd /srv/etcd-wal/infra1",
			"systemctl daemon-reload && systemctl enable --now --no-block etcdops-infra1.service  # started once a quorum of members runs",
		}},
		{"joining member", Member{Name: "a", InitialCluster: "a=http://h1:2380,b=http://h2:2380", InitialClusterState: "existing"},
			[]string{user, "systemctl daemon-reload && systemctl enable --now etcdops-a.service"}},
		{"own group", Member{Name: "a", User: "kv", Group: "ops", DataDir: "/data/a"}, []string{
			"getent group ops >/dev/null || groupadd --system ops",
			"getent passwd kv >/dev/null || useradd --system --gid ops --no-create-home --shell /usr/sbin/nologin kv",
			"install -d -m 0700 -o kv -g ops /data/a",
			"systemctl daemon-reload && systemctl enable --now etcdops-a.service",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.m.SetDefaults(); err != nil {
				t.Fatal(err)
			}
			if got := tt.m.NextSteps(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestSetDefaultsHostName(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	var m Member
	if err := m.SetDefaults(); err != nil {
		t.Fatal(err)
	}
	if want, _, _ := strings.Cut(host, "."); m.Name != want {
		t.Errorf("Name = %q, want the short host name %q", m.Name, want)
	}
	if m.DataDir != "/var/lib/etcd/"+m.Name || m.UnitName != "etcdops-"+m.Name+".service" || m.EnvFile != "/etc/etcdops/"+m.Name+".env" {
		t.Errorf("defaults not derived from the name: %+v", m)
	}
}

func TestPrint(t *testing.T) {
	var b bytes.Buffer
	files := []File{{Path: "/a", Data: []byte("A\n")}, {Path: "/b", Data: []byte("B\n")}}
	if err := Print(&b, files); err != nil {
		t.Fatal(err)
	}
	if want := "# /a\nA\n\n# /b\nB\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
