package etcdtest

import (
	"context"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// EmbeddedMember is an etcd member running inside the test process.
type EmbeddedMember struct {
	Spec MemberSpec
	Etcd *embed.Etcd
	// close closes Etcd once (StartEtcd).
	close func()
	// Configure, when set, adjusts the member's configuration before each start.
	Configure func(*embed.Config)
}

// EmbeddedCluster is a cluster of in-process members.
type EmbeddedCluster struct {
	t       testing.TB
	Members []*EmbeddedMember
}

// StartEmbedded starts an n-member cluster in this process, with data in a
// temporary dir, and waits until every member serves. The cluster stops when
// the test ends. Members skip fsync: they are for functional tests only.
func StartEmbedded(t testing.TB, n int, configure ...func(*embed.Config)) *EmbeddedCluster {
	t.Helper()
	return StartEmbeddedSpecs(t, Specs(t, n, t.TempDir()), configure...)
}

// StartEmbeddedSpecs is StartEmbedded for members of the given specs.
func StartEmbeddedSpecs(t testing.TB, specs []MemberSpec, configure ...func(*embed.Config)) *EmbeddedCluster {
	t.Helper()
	c := &EmbeddedCluster{t: t}
	n := len(specs)
	for _, spec := range specs {
		m := &EmbeddedMember{Spec: spec}
		if len(configure) > 0 {
			m.Configure = configure[0]
		}
		c.Members = append(c.Members, m)
	}
	t.Cleanup(c.Stop)
	// Members of a new cluster wait for each other, so they start together.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, m := range c.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.start()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start member %s: %v", c.Members[i].Spec.Name, err)
		}
	}
	for _, m := range c.Members {
		m.waitReady(t)
	}
	return c
}

// Config returns the embed configuration the member starts with.
func (m *EmbeddedMember) Config() *embed.Config {
	s := m.Spec
	cfg := embed.NewConfig()
	cfg.Name = s.Name
	cfg.Dir = s.DataDir
	cu, pu := mustURL(s.ClientURL), mustURL(s.PeerURL)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = s.InitialCluster
	cfg.ClusterState = s.ClusterState
	cfg.InitialClusterToken = s.Token
	if s.TLS != nil {
		info := transport.TLSInfo{CertFile: s.TLS.CertFile, KeyFile: s.TLS.KeyFile, TrustedCAFile: s.TLS.CAFile, ClientCertAuth: true}
		cfg.ClientTLSInfo, cfg.PeerTLSInfo = info, info
	}
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "error"
	cfg.TickMs = 50
	cfg.ElectionMs = 500
	if m.Configure != nil {
		m.Configure(cfg)
	}
	return cfg
}

func (m *EmbeddedMember) start() error {
	e, closeEtcd, err := StartEtcd(m.Config())
	if err != nil {
		return err
	}
	m.Etcd, m.close = e, closeEtcd
	return nil
}

func (m *EmbeddedMember) waitReady(t testing.TB) {
	t.Helper()
	select {
	case <-m.Etcd.Server.ReadyNotify():
	case err := <-m.Etcd.Err():
		t.Fatalf("member %s: %v", m.Spec.Name, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("member %s not ready after 30s", m.Spec.Name)
	}
}

// Stop stops the member; it may be restarted.
func (m *EmbeddedMember) Stop() {
	if m.Etcd != nil {
		m.close()
		m.Etcd = nil
	}
}

// Restart starts a stopped member again on its data dir and waits until it serves.
func (m *EmbeddedMember) Restart(t testing.TB) {
	t.Helper()
	m.Stop()
	if err := m.start(); err != nil {
		t.Fatalf("restart member %s: %v", m.Spec.Name, err)
	}
	m.waitReady(t)
}

// Endpoints returns the client URLs of the running members.
func (c *EmbeddedCluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		if m.Etcd != nil {
			eps = append(eps, m.Spec.ClientURL)
		}
	}
	return eps
}

// Client returns a client of the running members, closed when the test ends.
func (c *EmbeddedCluster) Client() *clientv3.Client {
	return NewClient(c.t, c.Endpoints()...)
}

// Stop stops every member.
func (c *EmbeddedCluster) Stop() {
	for _, m := range c.Members {
		m.Stop()
	}
}

// NewClient returns a client of endpoints, closed when the test ends.
func NewClient(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("client of %v: %v", endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Put writes key=value through cli and fails the test on error.
func Put(t testing.TB, cli *clientv3.Client, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, key, value); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// Snapshot takes a snapshot of the member cli talks to into memory, as etcd
// streams it (the database followed by etcd's sha256 trailer).
func Snapshot(t testing.TB, cli *clientv3.Client) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// EnableAuth adds user root (with the root role) and, without roles, each
// "name:password" of users, then turns auth on; it fails the test on error.
func EnableAuth(t testing.TB, cli *clientv3.Client, rootPassword string, users ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", rootPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
	}
	for _, u := range users {
		name, password, _ := strings.Cut(u, ":")
		steps = append(steps, func() error { _, err := cli.UserAdd(ctx, name, password); return err })
	}
	steps = append(steps, func() error { _, err := cli.AuthEnable(ctx); return err })
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("enable auth: %v", err)
		}
	}
}

func mustURL(s string) url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return *u
}

// StartEtcd starts an in-process member as embed.StartEtcd does, and
// closes it as soon as its server starts stopping by itself, as etcd's
// binary exits then (a member removed from its cluster stops). Left
// open, etcd 3.6.16 goes on answering gRPC for a stopped server whose
// backend is closed, and Maintenance.Status then dereferences a nil bolt
// bucket and panics, which ends the whole test binary. Close the member
// with the returned close, never e.Close: it closes once.
func StartEtcd(cfg *embed.Config) (e *embed.Etcd, close func(), err error) {
	e, err = embed.StartEtcd(cfg)
	if err != nil {
		return nil, nil, err
	}
	var once sync.Once
	close = func() { once.Do(e.Close) }
	go func() {
		select {
		case <-e.Server.StoppingNotify():
			close()
		case <-e.Server.StopNotify():
		}
	}()
	return e, close, nil
}
