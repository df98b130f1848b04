package restore

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const cluster3 = "a=https://10.0.0.1:2380,b=https://10.0.0.2:2380,c=https://10.0.0.3:2380"

func TestPlanMembers(t *testing.T) {
	p, err := NewPlan(Config{InitialCluster: cluster3, Token: "tok", DataDirTemplate: "/var/lib/etcd/{name}",
		ClientURLs: "b=https://etcd-b.example:12379"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Targets()) != 3 || p.Only != "" {
		t.Fatalf("targets %v, want all three members", p.Targets())
	}
	a, b := p.Members[0], p.Members[1]
	want := Member{Name: "a", PeerURLs: []string{"https://10.0.0.1:2380"}, ClientURLs: []string{"https://10.0.0.1:2379"},
		ListenPeerURLs: []string{"https://10.0.0.1:2380"}, ListenClientURLs: []string{"https://10.0.0.1:2379"},
		DataDir: "/var/lib/etcd/a", ConfigFile: "/var/lib/etcd/a.yml", EnvFile: "/var/lib/etcd/a.env"}
	want.ID = a.ID
	if !equalMember(a, want) {
		t.Errorf("member a = %+v\nwant %+v", a, want)
	}
	// A host name is advertised as given and listened on all interfaces.
	if b.ClientURLs[0] != "https://etcd-b.example:12379" || b.ListenClientURLs[0] != "https://0.0.0.0:12379" {
		t.Errorf("member b client URLs %v, listen %v", b.ClientURLs, b.ListenClientURLs)
	}
	// IDs are etcd's: what `etcdutl snapshot restore` gives these members.
	// (etcd's membership.NewMember of the peer URLs and token.)
	if a.ID == b.ID || len(a.ID) == 0 || p.ClusterID == "" {
		t.Errorf("IDs a=%s b=%s cluster=%s", a.ID, b.ID, p.ClusterID)
	}
	q, _ := NewPlan(Config{InitialCluster: cluster3, Token: "other"})
	if q.Members[0].ID == a.ID || q.ClusterID == p.ClusterID {
		t.Error("another token gave the same member or cluster ID")
	}
}

func equalMember(a, b Member) bool {
	j := func(m Member) string {
		return strings.Join([]string{m.Name, m.ID, strings.Join(m.PeerURLs, " "), strings.Join(m.ClientURLs, " "),
			strings.Join(m.ListenPeerURLs, " "), strings.Join(m.ListenClientURLs, " "), m.DataDir, m.ConfigFile, m.EnvFile}, "|")
	}
	return j(a) == j(b)
}

func TestPlanOneMemberAndPaths(t *testing.T) {
	wd, _ := os.Getwd()
	tests := []struct {
		name string
		cfg  Config
		dir  string
		conf string
	}{
		{"default template is relative to the working dir", Config{Name: "b"}, filepath.Join(wd, "b.etcd"), filepath.Join(wd, "b.yml")},
		{"one member needs no {name}", Config{Name: "b", DataDirTemplate: "/var/lib/etcd"}, "/var/lib/etcd", "/var/lib/b.yml"},
		{"config dir with {name}", Config{Name: "c", DataDirTemplate: "/data/{name}/etcd", ConfigDir: "/etc/etcd/{name}"}, "/data/c/etcd", "/etc/etcd/c/c.yml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.InitialCluster, tt.cfg.Token = cluster3, "tok"
			p, err := NewPlan(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			ts := p.Targets()
			if len(ts) != 1 || ts[0].Name != tt.cfg.Name || ts[0].DataDir != tt.dir || ts[0].ConfigFile != tt.conf {
				t.Errorf("targets %+v, want %s in %s with %s", ts, tt.cfg.Name, tt.dir, tt.conf)
			}
		})
	}
}

func TestPlanBadInput(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field Field
		want  string
	}{
		{"empty cluster", Config{}, FieldInitialCluster, "expected name=peerURL"},
		{"no equals", Config{InitialCluster: "a"}, FieldInitialCluster, `"a": expected name=peerURL`},
		{"bad URL", Config{InitialCluster: "a=10.0.0.1:2380"}, FieldInitialCluster, "member a"},
		{"URL with path", Config{InitialCluster: "a=http://10.0.0.1:2380/x"}, FieldInitialCluster, "member a"},
		{"duplicate name", Config{InitialCluster: "a=http://h1:2380,a=http://h2:2380"}, FieldInitialCluster, "member a is listed twice"},
		{"duplicate peer URL", Config{InitialCluster: "a=http://h1:2380,b=http://h1:2380"}, FieldInitialCluster, "members a and b have the same peer URL"},
		{"name with slash", Config{InitialCluster: "a/b=http://h1:2380"}, FieldInitialCluster, "no spaces or slashes"},
		{"unknown --name", Config{InitialCluster: cluster3, Name: "d"}, FieldName, "not a member of the initial cluster (a, b, c)"},
		{"template without {name}", Config{InitialCluster: cluster3, DataDirTemplate: "/var/lib/etcd"}, FieldDataDirTemplate, "expected {name} in it"},
		{"client URL of unknown member", Config{InitialCluster: cluster3, ClientURLs: "d=http://h:2379"}, FieldClientURLs, "d is not a member"},
		{"shared client URL", Config{InitialCluster: "a=http://h:2380,b=http://h:2381"}, FieldClientURLs, "is also a's client URL"},
		{"client URL is a peer URL", Config{InitialCluster: cluster3, ClientURLs: "a=https://10.0.0.2:2380"}, FieldClientURLs, "is also b's peer URL"},
		{"peer port 2379", Config{InitialCluster: "a=http://h:2379"}, FieldClientURLs, "give its client URL"},
		{"bump without mark", Config{InitialCluster: cluster3, RevisionBump: 10}, FieldMarkCompacted, "revision bump"},
		{"mark without bump", Config{InitialCluster: cluster3, MarkCompacted: true}, FieldMarkCompacted, "revision bump"},
		{"token with space", Config{InitialCluster: cluster3, Token: "a b"}, FieldToken, "without spaces"},
		{"config inside a data dir", Config{InitialCluster: cluster3, DataDirTemplate: "/d/{name}", ConfigDir: "/d/a"}, FieldConfigDir, "inside the data dir of a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.Token == "" {
				tt.cfg.Token = "tok"
			}
			_, err := NewPlan(tt.cfg)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want a ConfigError of %s containing %q", err, tt.field, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestSourceBadInput(t *testing.T) {
	tests := []struct {
		src   Source
		field Field
	}{
		{Source{}, FieldFrom},
		{Source{From: "s3://bucket"}, FieldSnapshot},
		{Source{From: "snap.db", Snapshot: "latest"}, FieldSnapshot},
		{Source{From: "snap.db", Tag: "etcd-1"}, FieldSnapshot},
	}
	for _, tt := range tests {
		var ce *ConfigError
		if err := tt.src.Validate(); !errors.As(err, &ce) || ce.Field != tt.field {
			t.Errorf("%+v: error %v, want one of %s", tt.src, err, tt.field)
		}
	}
}

func TestNewTokenIsFresh(t *testing.T) {
	a, b := NewToken(fixedTime), NewToken(fixedTime)
	if a == b || !strings.HasPrefix(a, "etcd-restore-20261121-040000-") {
		t.Errorf("tokens %s, %s", a, b)
	}
}

// TestConfigFiles checks the generated files against golden files; run
// with -update to rewrite them.
func TestConfigFiles(t *testing.T) {
	p, err := NewPlan(Config{InitialCluster: cluster3, Token: "etcd-restore-20261121-040000-0a1b2c3d",
		DataDirTemplate: "/var/lib/etcd/{name}", ConfigDir: "/etc/etcd",
		TLS: TLS{CertFile: "/etc/etcd/pki/{name}.crt", KeyFile: "/etc/etcd/pki/{name}.key", TrustedCAFile: "/etc/etcd/pki/ca.crt",
			ClientCertAuth: true, PeerCertFile: "/etc/etcd/pki/{name}.crt", PeerKeyFile: "/etc/etcd/pki/{name}.key",
			PeerTrustedCAFile: "/etc/etcd/pki/ca.crt", PeerClientCertAuth: true}})
	if err != nil {
		t.Fatal(err)
	}
	m := p.Members[1]
	golden(t, "b.yml", p.ConfigYAML(m))
	golden(t, "b.env", p.EnvFile(m))
	plain, _ := NewPlan(Config{InitialCluster: "a=http://127.0.0.1:2380", Token: "t w$o", DataDirTemplate: "/tmp/my etcd/{name}"})
	if plain != nil {
		t.Fatal("a token with a space was accepted")
	}
	plain, err = NewPlan(Config{InitialCluster: "a=http://127.0.0.1:2380", Token: "tok", DataDirTemplate: "/tmp/my etcd's $dir/{name}"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "quoted.yml", plain.ConfigYAML(plain.Members[0]))
	golden(t, "quoted.env", plain.EnvFile(plain.Members[0]))
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from %s (run with -update to accept):\n%s", name, path, got)
	}
}

var fixedTime = time.Date(2026, 11, 21, 4, 0, 0, 0, time.UTC)
