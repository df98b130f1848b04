package backup

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcdops/etcdops/internal/etcdtest"
)

// TestRevisionScannerAgreesWithEtcdutl checks the streamed revision against
// etcdutl's snapshot status (the same code as the stock tool) on databases
// of every shape: empty, an inline key bucket, deep trees, values in
// overflow pages, and a compacted tombstone as the newest revision.
func TestRevisionScannerAgreesWithEtcdutl(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	cli := c.Client()
	ctx := context.Background()
	steps := []struct {
		name string
		do   func()
	}{
		{"empty", func() {}},
		{"three keys", func() {
			for i := 0; i < 3; i++ {
				etcdtest.Put(t, cli, fmt.Sprint("k", i), "v")
			}
		}},
		{"many small keys", func() {
			for i := 0; i < 3000; i++ {
				etcdtest.Put(t, cli, fmt.Sprintf("/registry/pods/%05d", i), strings.Repeat("x", 100))
			}
		}},
		{"large values", func() {
			for i := 0; i < 20; i++ {
				etcdtest.Put(t, cli, fmt.Sprint("big", i), strings.Repeat("y", 200_000))
			}
		}},
		{"compacted tombstone last", func() {
			if _, err := cli.Delete(ctx, "/registry/pods/", clientv3.WithPrefix()); err != nil {
				t.Fatal(err)
			}
			resp, err := cli.Delete(ctx, "k0")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
				t.Fatal(err)
			}
		}},
		{"defragmented", func() {
			if _, err := cli.Defragment(ctx, c.Endpoints()[0]); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, step := range steps {
		step.do()
		snap := etcdtest.Snapshot(t, cli)
		path := filepath.Join(t.TempDir(), "s.db")
		if err := os.WriteFile(path, snap, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := statusOf(path)
		if err != nil {
			t.Fatalf("%s: etcdutl status: %v", step.name, err)
		}
		for _, chunk := range []int{1, 13, 4096, 3*4096 + 7, 32 << 10, 256 << 10, len(snap)} {
			if chunk == 1 && len(snap) > 1<<20 {
				continue
			}
			var s revisionScanner
			for i := 0; i < len(snap); i += chunk {
				s.Write(snap[i:min(i+chunk, len(snap))])
			}
			rev, err := s.Revision()
			if err != nil || rev != st.Revision {
				t.Errorf("%s, chunks of %d: scanner says %d (%v), etcdutl says %d", step.name, chunk, rev, err, st.Revision)
			}
		}
	}
}

func TestRevisionScannerRejectsGarbage(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":     nil,
		"zeros":     make([]byte, 8192),
		"text":      bytes.Repeat([]byte("not a database "), 1000),
		"truncated": nil,
	} {
		var s revisionScanner
		s.Write(data)
		if _, err := s.Revision(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestSaveKeepsSnapshotWithUnreadableRevision saves a real database that the stream reader cannot
// read (the newest revision's leaf holds a value larger than the reader's one-node bound): the
// snapshot is kept with its revision unknown, and verify reads the revision with etcd's code.
func TestSaveKeepsSnapshotWithUnreadableRevision(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1, func(cfg *embed.Config) { cfg.MaxRequestBytes = maxNode + 8<<20 })
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second,
		MaxCallSendMsgSize: maxNode + 8<<20, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	etcdtest.Put(t, cli, "small", "v")
	etcdtest.Put(t, cli, "huge", strings.Repeat("h", maxNode+1<<20))
	store, err := OpenStore(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dial := func(endpoints ...string) (*clientv3.Client, error) {
		return clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	}
	m, err := Save(context.Background(), store, SaveConfig{Endpoints: c.Endpoints(), Dial: dial, CommandTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("save: %v", err)
	}
	if m.Revision != RevisionUnknown || m.TotalKeys != -1 {
		t.Errorf("manifest says revision %d, %d keys; want unknown (%d, -1)", m.Revision, m.TotalKeys, RevisionUnknown)
	}
	snap, err := store.Find(context.Background(), m.Name, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Verify(context.Background(), store, snap, VerifyConfig{})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	resp, err := cli.Get(context.Background(), "small")
	if err != nil {
		t.Fatal(err)
	}
	if res.Revision != resp.Header.Revision || !strings.Contains(res.Note, "no revision") {
		t.Errorf("verify found revision %d (note %q), the member is at %d", res.Revision, res.Note, resp.Header.Revision)
	}
}
