package backup

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/embed"
)

// restoreTest restores the snapshot at path into dir with etcd's own
// restore, starts a member on it on loopback, and checks that it serves
// the manifest's revision and key count.
func restoreTest(ctx context.Context, path, dir string, m *Manifest, lg *zap.Logger) error {
	if lg == nil {
		lg = zap.NewNop()
	}
	peer, err := loopbackURL()
	if err != nil {
		return err
	}
	client, err := loopbackURL()
	if err != nil {
		return err
	}
	dataDir := filepath.Join(dir, "member.etcd")
	err = snapshot.NewV3(lg).Restore(snapshot.RestoreConfig{
		SnapshotPath: path, Name: "restore-test", OutputDataDir: dataDir,
		PeerURLs: []string{peer.String()}, InitialCluster: "restore-test=" + peer.String(),
		InitialClusterToken: "etcdops-restore-test",
	})
	if err != nil {
		return err
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = "restore-test", dataDir
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.InitialCluster = "restore-test=" + peer.String()
	cfg.LogLevel = "error"
	// A throw-away member: nothing it writes needs to survive a crash.
	cfg.UnsafeNoFsync = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return fmt.Errorf("restored member not ready after a minute")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client.String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := cli.Get(cctx, "\x00", clientv3.WithFromKey(), clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	if m.Revision != RevisionUnknown && resp.Header.Revision != m.Revision || m.TotalKeys >= 0 && resp.Count != m.TotalKeys {
		return fmt.Errorf("restored member serves revision %d with %d keys, manifest says %d and %d",
			resp.Header.Revision, resp.Count, m.Revision, m.TotalKeys)
	}
	return nil
}

// loopbackURL returns an http URL on a loopback port that is free now.
func loopbackURL() (*url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer l.Close()
	return &url.URL{Scheme: "http", Host: l.Addr().String()}, nil
}
