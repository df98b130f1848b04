package restore

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcdops/etcdops/backup"
)

// trialPeerURL is the peer URL the trial member's cluster records. Nothing dials it: a one-member
// cluster has no peer to talk to, and the member listens on a port the kernel picks.
const trialPeerURL = "http://127.0.0.1:2380"

// Trial restores the snapshot file at path with Run, every check included, into a private
// temporary directory, starts a member on it and checks that it serves m's revision (when
// known) and key count (when known). The member listens on loopback ports that the kernel picks
// as it binds them (port 0): etcd's unix socket URLs name sockets relative to the working
// directory, which a library running inside serve or schedule must not change. It waits for the
// member as long as ctx allows, and removes everything it wrote. It has the signature of
// backup.VerifyConfig.RestoreTest.
func Trial(ctx context.Context, path string, m *backup.Manifest, lg *zap.Logger) error {
	if lg == nil {
		lg = zap.NewNop()
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".etcdops-trial-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	plan, err := NewPlan(Config{InitialCluster: "trial=" + trialPeerURL, ClientURLs: "trial=http://127.0.0.1:2379",
		Token: NewToken(time.Now()), DataDirTemplate: filepath.Join(dir, "{name}.etcd"), ConfigDir: dir})
	if err != nil {
		return err
	}
	snap, err := OpenSnapshot(ctx, Source{From: path, Logger: lg})
	if err != nil {
		return err
	}
	defer snap.Close()
	if _, err := Run(ctx, plan, snap, Options{Logger: lg}); err != nil {
		return err
	}
	return serveTrial(ctx, plan.Members[0].DataDir, m)
}

// serveTrial starts a member on the restored data dir and compares what it serves with m.
func serveTrial(ctx context.Context, dataDir string, m *backup.Manifest) error {
	any := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	peer, _ := url.Parse(trialPeerURL)
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = "trial", dataDir
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{any}, []url.URL{*peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{any}, []url.URL{any}
	cfg.InitialCluster = "trial=" + trialPeerURL
	cfg.LogLevel = "error"
	// A throw-away member: nothing it writes needs to survive a crash.
	cfg.UnsafeNoFsync = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start a member on the restore: %w", err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fmt.Errorf("member on the restore: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("member on the restore not ready: %w", ctx.Err())
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + e.Clients[0].Addr().String()}, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("read from the member on the restore: %w", err)
	}
	if m.Revision != backup.RevisionUnknown && resp.Header.Revision != m.Revision || m.TotalKeys >= 0 && resp.Count != m.TotalKeys {
		return fmt.Errorf("restored member serves revision %d with %d keys, manifest says %d and %d",
			resp.Header.Revision, resp.Count, m.Revision, m.TotalKeys)
	}
	return nil
}
