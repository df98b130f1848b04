// Package etcdtest starts real etcd clusters for tests: in-process members on
// embedded etcd, `etcdops serve` processes, and stock etcd processes.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// MemberSpec is what one member of a test cluster is started with. The same
// spec starts an in-process member or a process, so tests can mix both.
type MemberSpec struct {
	Name      string
	DataDir   string
	ClientURL string
	PeerURL   string
	// InitialCluster is the whole cluster, name=peerURL,...
	InitialCluster string
	// ClusterState is "new" or "existing".
	ClusterState string
	Token        string
	// TLS, when set, serves clients and peers over TLS with client
	// certificate auth (URLs must be https).
	TLS *TLSFiles
	// Extra are further etcd flags, as "--flag=value".
	Extra []string
}

// TLSFiles are a member's certificate, key and trusted CA.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
}

// Args returns the spec as etcd command line flags.
func (s MemberSpec) Args() []string {
	args := []string{
		"--name=" + s.Name,
		"--data-dir=" + s.DataDir,
		"--listen-client-urls=" + s.ClientURL,
		"--advertise-client-urls=" + s.ClientURL,
		"--listen-peer-urls=" + s.PeerURL,
		"--initial-advertise-peer-urls=" + s.PeerURL,
		"--initial-cluster=" + s.InitialCluster,
		"--initial-cluster-state=" + s.ClusterState,
		"--initial-cluster-token=" + s.Token,
	}
	if s.TLS != nil {
		args = append(args,
			"--cert-file="+s.TLS.CertFile, "--key-file="+s.TLS.KeyFile, "--trusted-ca-file="+s.TLS.CAFile, "--client-cert-auth",
			"--peer-cert-file="+s.TLS.CertFile, "--peer-key-file="+s.TLS.KeyFile, "--peer-trusted-ca-file="+s.TLS.CAFile, "--peer-client-cert-auth")
	}
	return append(args, s.Extra...)
}

// WithTLS switches specs to https for clients and peers, with certificates
// issued by ca and client-certificate auth on both.
func WithTLS(t testing.TB, specs []MemberSpec, ca *CA) []MemberSpec {
	t.Helper()
	out := make([]MemberSpec, len(specs))
	for i, s := range specs {
		pair := ca.Issue(t, s.Name)
		s.TLS = &TLSFiles{CAFile: ca.CertFile, CertFile: pair.CertFile, KeyFile: pair.KeyFile}
		s.ClientURL = strings.Replace(s.ClientURL, "http://", "https://", 1)
		s.PeerURL = strings.Replace(s.PeerURL, "http://", "https://", 1)
		s.InitialCluster = strings.ReplaceAll(s.InitialCluster, "=http://", "=https://")
		out[i] = s
	}
	return out
}

// Specs returns the specs of an n-member cluster on free loopback ports,
// with data dirs under dir. Member names are m0, m1, ...
func Specs(t testing.TB, n int, dir string) []MemberSpec {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("m%d", i)
	}
	return SpecsNamed(t, dir, names...)
}

// SpecsNamed is Specs for members of the given names.
func SpecsNamed(t testing.TB, dir string, names ...string) []MemberSpec {
	t.Helper()
	specs := make([]MemberSpec, len(names))
	var initial []string
	for i, name := range names {
		specs[i] = MemberSpec{
			Name:         name,
			DataDir:      filepath.Join(dir, name+".etcd"),
			ClientURL:    "http://" + FreeAddr(t),
			PeerURL:      "http://" + FreeAddr(t),
			ClusterState: "new",
			Token:        "etcdtest-" + filepath.Base(dir),
		}
		initial = append(initial, name+"="+specs[i].PeerURL)
	}
	for i := range specs {
		specs[i].InitialCluster = strings.Join(initial, ",")
	}
	return specs
}

var (
	portMu    sync.Mutex
	portsUsed = map[string]bool{}
)

// FreeAddr returns a loopback host:port that is free now and that no other
// call in this process has returned.
func FreeAddr(t testing.TB) string {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		addr := l.Addr().String()
		l.Close()
		if !portsUsed[addr] {
			portsUsed[addr] = true
			return addr
		}
	}
}

// HostPort returns the host:port of a URL such as a member's client URL.
func HostPort(t testing.TB, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parse %s: %v", rawURL, err)
	}
	return u.Host
}

// moduleRoot finds the directory holding etcdops' go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.HasPrefix(string(b), "module github.com/etcdops/etcdops\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod of github.com/etcdops/etcdops not found above the working directory")
		}
		dir = parent
	}
}
