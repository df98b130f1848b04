package restore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.etcd.io/etcd/server/v3/storage/schema"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdtest"
)

// makeSnapshot fills a member with keys, overwrites, deletes and a
// compaction, and saves a snapshot with stock etcdctl. It returns the
// snapshot's path and the member's HashKV at the snapshot's revision.
func makeSnapshot(t *testing.T, keys int) (string, uint32, int64) {
	t.Helper()
	c := etcdtest.StartEmbedded(t, 1)
	cli := c.Client()
	for i := 0; i < keys; i++ {
		etcdtest.Put(t, cli, fmt.Sprintf("/registry/pods/p%04d", i), strings.Repeat("v", 100+i%50))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	etcdtest.Put(t, cli, "/registry/pods/p0000", "changed")
	if _, err := cli.Delete(ctx, "/registry/pods/p0001"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Put(ctx, "/gone", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	etcdtest.Put(t, cli, "/after-compaction", "y")
	if _, err := cli.Delete(ctx, "/gone"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "snap.db")
	etcdtest.Etcdctl(t, c.Endpoints(), "snapshot", "save", path)
	h, err := cli.HashKV(ctx, c.Endpoints()[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	return path, h.Hash, h.Header.Revision
}

func openPlain(t *testing.T, path string) *Snapshot {
	t.Helper()
	s, err := OpenSnapshot(context.Background(), Source{From: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Inspect(); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSnapshotFactsAreEtcds(t *testing.T) {
	path, hash, rev := makeSnapshot(t, 30)
	s := openPlain(t, path)
	if s.Revision != rev || s.KVHash != hash || s.Keys != 30 || s.CompactRevision == 0 {
		t.Errorf("facts %+v; the member said revision %d, HashKV %d, 30 keys", s.Facts, rev, hash)
	}
	if s.Encoding != "plain" || s.spool != "" || s.path != path {
		t.Errorf("a plain file is read in place: %+v", s)
	}
}

// TestEqualsEtcdutlRestores restores three members at once and compares
// each with a stock `etcdutl snapshot restore` of that member: the same
// WAL byte for byte, the same raft snapshot, and a database with the same
// contents. (Byte for byte the databases may differ: etcd's backend also
// commits on a timer, so its own restore does not always lay out bolt's
// pages the same way twice.)
func TestEqualsEtcdutlRestores(t *testing.T) {
	path, _, _ := makeSnapshot(t, 50)
	s := openPlain(t, path)
	for _, tt := range []struct {
		name string
		bump uint64
	}{{"plain", 0}, {"bump-revision", 1000}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p, err := NewPlan(Config{InitialCluster: "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380,c=http://10.0.0.3:2380",
				Token: "tok", DataDirTemplate: filepath.Join(dir, "ours", "{name}"), RevisionBump: tt.bump, MarkCompacted: tt.bump > 0})
			if err != nil {
				t.Fatal(err)
			}
			res, err := Run(context.Background(), p, s, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := []string{res.Members[0].Database, res.Members[1].Database, res.Members[2].Database}; got[0] != DBRestored || got[1] == DBRestored {
				t.Errorf("databases written as %v", got)
			}
			for _, m := range p.Members {
				stock := filepath.Join(dir, "stock", m.Name)
				args := []string{"snapshot", "restore", path, "--data-dir", stock, "--name", m.Name, "--initial-cluster", p.InitialCluster,
					"--initial-advertise-peer-urls", m.PeerURLs[0], "--initial-cluster-token", "tok"}
				if tt.bump > 0 {
					args = append(args, "--bump-revision", fmt.Sprint(tt.bump), "--mark-compacted")
				}
				if out, err := exec.Command(etcdtest.Tool(t, "etcdutl"), args...).CombinedOutput(); err != nil {
					t.Fatalf("etcdutl %v: %v\n%s", args, err, out)
				}
				sameDataDir(t, m.DataDir, stock)
				checkModes(t, m.DataDir)
			}
		})
	}
}

// sameDataDir compares a data dir with one that etcdutl wrote.
func sameDataDir(t *testing.T, ours, stock string) {
	t.Helper()
	files := func(dir string) []string {
		var out []string
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			// etcd's WAL may leave a preallocated spare segment, 0.tmp.
			if err == nil && !fi.IsDir() && !strings.HasSuffix(p, ".tmp") {
				rel, _ := filepath.Rel(dir, p)
				out = append(out, rel)
			}
			return nil
		})
		return out
	}
	if a, b := files(ours), files(stock); !reflect.DeepEqual(a, b) {
		t.Fatalf("files %v, etcdutl wrote %v", a, b)
	}
	wal := filepath.Join("member", "wal", "0000000000000000-0000000000000000.wal")
	if !bytes.Equal(read(t, filepath.Join(ours, wal)), read(t, filepath.Join(stock, wal))) {
		t.Errorf("%s: WAL differs from etcdutl's", ours)
	}
	status := func(dir string) snapshot.Status {
		st, err := snapshot.NewV3(zap.NewNop()).Status(filepath.Join(dir, "member", "snap", "db"))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// Status hashes every bucket's keys and values.
	if a, b := status(ours), status(stock); a.Hash != b.Hash || a.Revision != b.Revision || a.TotalKey != b.TotalKey {
		t.Errorf("%s: database %+v, etcdutl's %+v", ours, a, b)
	}
	snaps, _ := filepath.Glob(filepath.Join(ours, "member", "snap", "*.snap"))
	stockSnaps, _ := filepath.Glob(filepath.Join(stock, "member", "snap", "*.snap"))
	if len(snaps) != 1 || len(stockSnaps) != 1 || filepath.Base(snaps[0]) != filepath.Base(stockSnaps[0]) {
		t.Fatalf("raft snapshots %v, etcdutl's %v", snaps, stockSnaps)
	}
	a, err := snap.Read(zap.NewNop(), snaps[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := snap.Read(zap.NewNop(), stockSnaps[0])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Metadata, b.Metadata) || !reflect.DeepEqual(v2Members(t, a.Data), v2Members(t, b.Data)) {
		t.Errorf("%s: raft snapshot %v %v, etcdutl's %v %v", ours, a.Metadata, v2Members(t, a.Data), b.Metadata, v2Members(t, b.Data))
	}
}

// v2Members returns the members that a raft snapshot carries in its v2
// store, as member ID → the JSON of each of its attributes. The rest of the
// store (indexes, event history) depends on map order.
func v2Members(t *testing.T, data []byte) map[string]string {
	t.Helper()
	type node struct {
		Value    string
		Children map[string]*node
	}
	var store struct{ Root node }
	if err := json.Unmarshal(data, &store); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	members := store.Root.Children["0"].Children["members"]
	for id, m := range members.Children {
		for attr, v := range m.Children {
			out[id+"/"+attr] = v.Value
		}
	}
	if len(out) == 0 {
		t.Fatalf("no members in the raft snapshot")
	}
	return out
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkModes checks that a data dir is private: dirs 0700, files 0600.
func checkModes(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
}

func TestRunLeavesNothingOnFailureAndCleansUpAfterACrash(t *testing.T) {
	path, _, _ := makeSnapshot(t, 5)
	s := openPlain(t, path)
	dir := t.TempDir()
	p, err := NewPlan(Config{InitialCluster: "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380", Token: "tok",
		DataDirTemplate: filepath.Join(dir, "{name}.etcd")})
	if err != nil {
		t.Fatal(err)
	}
	// What a killed restore leaves: a half-written temporary data dir.
	stale := filepath.Join(dir, "b.etcd.restoring-12345")
	os.MkdirAll(filepath.Join(stale, "member", "snap"), 0o700)
	os.WriteFile(filepath.Join(stale, "member", "snap", "db"), []byte("half"), 0o600)

	// A cancelled restore removes what it wrote.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, p, s, Options{}); err == nil {
		t.Fatal("a cancelled restore succeeded")
	}
	entries(t, dir)
	if _, err := Run(context.Background(), p, s, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, dir); !reflect.DeepEqual(got, []string{"a.env", "a.etcd", "a.yml", "b.env", "b.etcd", "b.yml"}) {
		t.Errorf("restore left %v", got)
	}
	for _, f := range []string{"a.env", "a.yml"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want mode 0600", f, err)
		}
	}

	// A second restore refuses the existing data dirs, and with
	// MoveAside keeps them.
	q, _ := NewPlan(Config{InitialCluster: p.InitialCluster, Token: "tok2", DataDirTemplate: filepath.Join(dir, "{name}.etcd")})
	_, err = Run(context.Background(), q, s, Options{})
	if err == nil || !strings.Contains(err.Error(), "exists and is not empty") || !errors.Is(err, ErrWouldOverwrite) {
		t.Errorf("restore over existing data dirs: %v", err)
	}
	res, err := Run(context.Background(), q, s, Options{MoveAside: true, Now: func() time.Time { return fixedTime }})
	if err != nil {
		t.Fatal(err)
	}
	aside := filepath.Join(dir, "a.etcd.old-20261121T040000Z")
	if res.Members[0].MovedAside[filepath.Join(dir, "a.etcd")] != aside {
		t.Errorf("moved aside %v", res.Members[0].MovedAside)
	}
	if _, err := checkDataDir(aside, p, p.Members[0], s, true); err != nil {
		t.Errorf("the data dir moved aside is not the first restore's: %v", err)
	}
	if _, err := checkDataDir(filepath.Join(dir, "a.etcd"), q, q.Members[0], s, true); err != nil {
		t.Errorf("second restore: %v", err)
	}
	if got := read(t, filepath.Join(dir, "a.yml")); !bytes.Equal(got, q.ConfigYAML(q.Members[0])) {
		t.Errorf("a.yml is not the second restore's:\n%s", got)
	}
}

// entries lists dir, failing on temporary leftovers.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		if strings.Contains(e.Name(), ".restoring-") || strings.HasSuffix(e.Name(), ".part") {
			t.Errorf("left %s", e.Name())
		}
		names = append(names, e.Name())
	}
	return names
}

func TestCorruptSnapshotIsRefused(t *testing.T) {
	path, _, _ := makeSnapshot(t, 20)
	b := read(t, path)
	b[len(b)/2] ^= 0xff
	corrupt := filepath.Join(t.TempDir(), "corrupt.db")
	os.WriteFile(corrupt, b, 0o600)
	if _, err := OpenSnapshot(context.Background(), Source{From: corrupt}); err == nil || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Errorf("corrupt snapshot: %v", err)
	}
	// A database copied from a data dir has no trailer: refused unless
	// SkipHashCheck, and then still checked by bolt.
	raw := filepath.Join(t.TempDir(), "db")
	os.WriteFile(raw, read(t, path)[:len(b)-32], 0o600)
	if _, err := OpenSnapshot(context.Background(), Source{From: raw}); !errors.Is(err, backup.ErrNoTrailer) {
		t.Errorf("no trailer: %v", err)
	}
	s, err := OpenSnapshot(context.Background(), Source{From: raw, SkipHashCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A page of the key bucket that names another page: bolt's check and
	// etcd's restore would panic where nothing can recover, this is an error.
	damaged := read(t, raw)
	root, pageSize := keyBucketRoot(t, raw)
	binary.LittleEndian.PutUint64(damaged[root*pageSize:], root+7)
	os.WriteFile(raw, damaged, 0o600)
	if _, err := OpenSnapshot(context.Background(), Source{From: raw, SkipHashCheck: true}); err == nil || !strings.Contains(err.Error(), "corrupt database") {
		t.Errorf("a damaged page passed with --skip-hash-check: %v", err)
	}
	// Both of bolt's meta pages broken.
	broken := read(t, raw)
	broken[0x30] ^= 0xff
	broken[4096+0x30] ^= 0xff
	os.WriteFile(raw, broken, 0o600)
	if _, err := OpenSnapshot(context.Background(), Source{From: raw, SkipHashCheck: true}); err == nil {
		t.Error("a corrupt database without trailer passed with --skip-hash-check")
	}
}

// keyBucketRoot returns the page number of the key bucket's root page and
// the database's page size.
func keyBucketRoot(t *testing.T, path string) (uint64, uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var root uint64
	db.View(func(tx *bolt.Tx) error {
		root = uint64(tx.Bucket(schema.Key.Name()).Root())
		return nil
	})
	if root == 0 {
		t.Fatal("the key bucket is inline: no page of its own")
	}
	return root, uint64(db.Info().PageSize)
}

// TestLocalBackupFiles restores from files that `etcdops backup save`
// stored, copied to local disk: with their manifest, every check of a
// bucket; without it, decoded by their name.
func TestLocalBackupFiles(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	cli := c.Client()
	for i := 0; i < 20; i++ {
		etcdtest.Put(t, cli, fmt.Sprintf("k%02d", i), "v")
	}
	dir := t.TempDir()
	store, err := backup.OpenStore(context.Background(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	save := func(codec backup.Codec) string {
		m, err := backup.Save(context.Background(), store, backup.SaveConfig{Endpoints: c.Endpoints(), Codec: codec, Tag: "local",
			CommandTimeout: 5 * time.Second, Now: func() time.Time { return time.Now().Add(time.Duration(len(codec.Ext())) * time.Hour) },
			Dial: func(eps ...string) (*clientv3.Client, error) {
				return clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
			}})
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, m.Name)
	}
	plain, zst := save(backup.Codec{}), save(backup.Codec{Compress: true})
	bare := filepath.Join(t.TempDir(), filepath.Base(zst))
	os.WriteFile(bare, read(t, zst), 0o600)
	for _, tt := range []struct {
		path, encoding string
		inPlace        bool
		checks         string
	}{
		{plain, "plain", true, "etcd sha256 trailer, manifest sha256, bolt pages, manifest revision and keys"},
		{zst, "zstd", false, "stored sha256, etcd sha256 trailer, manifest sha256, bolt pages, manifest revision and keys"},
		{bare, "zstd", false, "etcd sha256 trailer, bolt pages"},
	} {
		s := openPlain(t, tt.path)
		if s.Encoding != tt.encoding || (s.path == tt.path) != tt.inPlace || strings.Join(s.Checks, ", ") != tt.checks || s.Keys != 20 {
			t.Errorf("%s: encoding %s, read from %s, checks %q, %d keys; want %s, in place %v, %q",
				filepath.Base(tt.path), s.Encoding, s.path, s.Checks, s.Keys, tt.encoding, tt.inPlace, tt.checks)
		}
	}
	for _, path := range []string{plain, zst} {
		b := read(t, path)
		b[len(b)/2] ^= 1
		os.WriteFile(path, b, 0o600)
		if _, err := OpenSnapshot(context.Background(), Source{From: path}); err == nil || !strings.Contains(err.Error(), filepath.Base(path)) {
			t.Errorf("corrupted local backup file: %v", err)
		}
	}
}
