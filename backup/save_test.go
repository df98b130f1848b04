package backup_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdclient"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/restore"
)

func dialer(t *testing.T) backup.Dialer {
	return userDialer("")
}

// userDialer dials as etcdctl --user USER would, with the options etcdops
// uses for snapshot transfers.
func userDialer(user string) backup.Dialer {
	return func(endpoints ...string) (*clientv3.Client, error) {
		return etcdclient.New(&etcdclient.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, User: user},
			nil, backup.StreamDialOptions()...)
	}
}

// fill writes n keys of about size bytes each.
func fill(t *testing.T, cli *clientv3.Client, prefix string, n, size int) {
	t.Helper()
	val := strings.Repeat("v", size)
	for i := 0; i < n; i++ {
		etcdtest.Put(t, cli, fmt.Sprintf("%s%05d", prefix, i), val)
	}
}

func openStore(t *testing.T, url string) *backup.Store {
	t.Helper()
	s, err := backup.OpenStore(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func fileBucket(t *testing.T) (string, string) {
	dir := t.TempDir()
	return "file://" + dir, dir
}

// etcdutlStatus runs stock `etcdutl snapshot status -w json` on a file.
func etcdutlStatus(t *testing.T, path string) (rev int64, keys int64) {
	t.Helper()
	out, err := exec.Command(etcdtest.Tool(t, "etcdutl"), "snapshot", "status", path, "-w", "json").Output()
	if err != nil {
		t.Fatalf("etcdutl snapshot status: %v", err)
	}
	var st struct {
		Revision int64 `json:"revision"`
		TotalKey int64 `json:"totalKey"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("etcdutl output %s: %v", out, err)
	}
	return st.Revision, st.TotalKey
}

func TestSaveFetchRestoreWithStockTools(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 3)
	cli := c.Client()
	fill(t, cli, "/registry/pods/", 200, 100)
	etcdtest.Put(t, cli, "/registry/pods/00000", "changed") // a second revision of one key

	url, dir := fileBucket(t)
	store := openStore(t, url)
	m, err := backup.Save(context.Background(), store, backup.SaveConfig{
		Endpoints: c.Endpoints(), Dial: dialer(t), CommandTimeout: 5 * time.Second, EtcdopsVersion: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.TotalKeys != 200 || m.MemberName == "" || m.Tag != "cluster-"+m.ClusterID || m.Compression != "none" {
		t.Errorf("manifest %+v", m)
	}
	if fi, err := os.Stat(filepath.Join(dir, m.Name)); err != nil || fi.Size() != m.StoredSize {
		t.Fatalf("stored object: %v %v", fi, err)
	}

	// Fetch gives the file etcdctl would have saved: stock etcdutl agrees
	// with the manifest on its revision, and restores it.
	snap, err := store.Find(context.Background(), "latest", "")
	if err != nil || snap.Key() != m.Name {
		t.Fatalf("latest = %v, %v; want %s", snap.Key(), err, m.Name)
	}
	file := filepath.Join(t.TempDir(), "snap.db")
	if err := backup.Fetch(context.Background(), store, snap, nil, file, false, nil); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("fetched file mode %v, want 0600", fi.Mode().Perm())
	}
	rev, keys := etcdutlStatus(t, file)
	if rev != m.Revision || keys != m.TotalKeys {
		t.Errorf("etcdutl says revision %d, %d keys; manifest says %d, %d", rev, keys, m.Revision, m.TotalKeys)
	}
	restored := filepath.Join(t.TempDir(), "restored.etcd")
	if out, err := exec.Command(etcdtest.Tool(t, "etcdutl"), "snapshot", "restore", file, "--data-dir", restored).CombinedOutput(); err != nil {
		t.Fatalf("etcdutl snapshot restore: %v\n%s", err, out)
	}
	if err := backup.Fetch(context.Background(), store, snap, nil, file, false, nil); !errors.Is(err, backup.ErrExists) {
		t.Errorf("fetch over an existing file: %v, want ErrExists", err)
	}

	res, err := backup.Verify(context.Background(), store, snap, backup.VerifyConfig{RestoreTest: restore.Trial})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stored || !res.Contents || !res.Restored || res.Revision != m.Revision {
		t.Errorf("verify result %+v", res)
	}
}

func TestSaveCompressedEncrypted(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	fill(t, c.Client(), "k", 300, 1000)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	rs, fps, err := backup.ParseRecipients([]string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	store := openStore(t, "mem://")
	m, err := backup.Save(context.Background(), store, backup.SaveConfig{
		Endpoints: c.Endpoints(), Dial: dialer(t), CommandTimeout: 5 * time.Second, Tag: "etcd-1",
		Codec: backup.Codec{Compress: true, Recipients: rs, Fingerprints: fps},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(m.Name, ".db.zst.age") || !strings.HasPrefix(m.Name, "etcd-1_") || m.Encryption != "age" ||
		m.Compression != "zstd" || len(m.Recipients) != 1 || m.StoredSize >= m.RawSize {
		t.Errorf("manifest %+v", m)
	}
	snap, err := store.Find(context.Background(), m.Name, "")
	if err != nil {
		t.Fatal(err)
	}
	// Without the identity only the stored bytes can be checked.
	res, err := backup.Verify(context.Background(), store, snap, backup.VerifyConfig{})
	if err != nil || !res.Stored || res.Contents {
		t.Errorf("verify without identity: %+v %v", res, err)
	}
	res, err = backup.Verify(context.Background(), store, snap, backup.VerifyConfig{Identities: []age.Identity{id}})
	if err != nil || !res.Contents || res.Revision != m.Revision {
		t.Errorf("verify with identity: %+v %v", res, err)
	}
	other, _ := age.GenerateX25519Identity()
	file := filepath.Join(t.TempDir(), "s.db")
	if err := backup.Fetch(context.Background(), store, snap, []age.Identity{other}, file, false, nil); err == nil {
		t.Error("fetch with the wrong identity succeeded")
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("failed fetch left %s", file)
	}
	if err := backup.Fetch(context.Background(), store, snap, []age.Identity{id}, file, false, nil); err != nil {
		t.Fatal(err)
	}
	if rev, _ := etcdutlStatus(t, file); rev != m.Revision {
		t.Errorf("etcdutl revision %d, manifest %d", rev, m.Revision)
	}
}

// cancelAfter cancels a context once n bytes went through.
type cancelAfter struct {
	n      int64
	cancel context.CancelFunc
}

func (p *cancelAfter) Wrap(r io.Reader, total int64) io.Reader { return &cancelReader{r: r, p: p} }
func (p *cancelAfter) Done()                                   {}

type cancelReader struct {
	r    io.Reader
	p    *cancelAfter
	seen int64
}

func (c *cancelReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.seen += int64(n)
	if c.seen >= c.p.n {
		c.p.cancel()
	}
	return n, err
}

func TestSaveCancelledLeavesNothing(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	fill(t, c.Client(), "k", 500, 2000)
	url, dir := fileBucket(t)
	store := openStore(t, url)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := backup.Save(ctx, store, backup.SaveConfig{
		Endpoints: c.Endpoints(), Dial: dialer(t), CommandTimeout: 5 * time.Second,
		Progress: &cancelAfter{n: 64 << 10, cancel: cancel},
	})
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled save: %v", err)
	}
	assertEmpty(t, dir)
}

// assertEmpty fails if dir holds anything but hidden temp leftovers of
// fileblob (it writes under a temporary name first).
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	var found []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			found = append(found, p)
		}
		return nil
	})
	if len(found) > 0 {
		t.Errorf("left behind: %v", found)
	}
}

func TestCorruptObjectIsRefused(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	fill(t, c.Client(), "k", 50, 100)
	url, dir := fileBucket(t)
	store := openStore(t, url)
	m, err := backup.Save(context.Background(), store, backup.SaveConfig{Endpoints: c.Endpoints(), Dial: dialer(t), CommandTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, m.Name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	snap, err := store.Find(context.Background(), "latest", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Verify(context.Background(), store, snap, backup.VerifyConfig{}); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("verify of a corrupt object: %v", err)
	}
	file := filepath.Join(t.TempDir(), "s.db")
	if err := backup.Fetch(context.Background(), store, snap, nil, file, false, nil); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("fetch of a corrupt object: %v", err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("failed fetch left %s", file)
	}
}

// killAfter kills a member process once n bytes of its snapshot went through.
type killAfter struct {
	t    *testing.T
	n    int64
	proc *etcdtest.Process
	seen int64
}

func (k *killAfter) Wrap(r io.Reader, total int64) io.Reader {
	return readerFunc(func(b []byte) (int, error) {
		n, err := r.Read(b)
		k.seen += int64(n)
		if k.seen >= k.n && k.proc.Running() {
			k.proc.Kill(k.t)
		}
		return n, err
	})
}
func (k *killAfter) Done() {}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

func TestMemberKilledMidStreamLeavesNothing(t *testing.T) {
	c := etcdtest.StartServeCluster(t, 1, "--unsafe-no-fsync")
	fill(t, etcdtest.NewClient(t, c.Endpoints()...), "k", 2000, 4000) // ~8 MB
	url, dir := fileBucket(t)
	store := openStore(t, url)
	_, err := backup.Save(context.Background(), store, backup.SaveConfig{
		Endpoints: c.Endpoints(), Dial: dialer(t), CommandTimeout: 5 * time.Second,
		Progress: &killAfter{t: t, n: 1 << 20, proc: c.Procs[0]},
	})
	if err == nil {
		t.Fatal("save succeeded although its member was killed mid-stream")
	}
	t.Logf("save failed as it should: %v", err)
	assertEmpty(t, dir)
}

func TestPickSourceNeverALearner(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	cli := c.Client()
	fill(t, cli, "k", 10, 10)
	// Add a learner and start it as an in-process member.
	spec := etcdtest.Specs(t, 1, t.TempDir())[0]
	spec.Name = "learner"
	ctx := context.Background()
	if _, err := cli.MemberAddAsLearner(ctx, []string{spec.PeerURL}); err != nil {
		t.Fatal(err)
	}
	spec.InitialCluster = c.Members[0].Spec.Name + "=" + c.Members[0].Spec.PeerURL + ",learner=" + spec.PeerURL
	spec.ClusterState = "existing"
	spec.Token = c.Members[0].Spec.Token
	learner := etcdtest.StartEmbeddedSpecs(t, []etcdtest.MemberSpec{spec})
	eps := append(c.Endpoints(), learner.Endpoints()...)
	store := openStore(t, "mem://")

	_, err := backup.Save(ctx, store, backup.SaveConfig{Endpoints: eps, Dial: dialer(t), CommandTimeout: 5 * time.Second, Member: "learner"})
	var ie *backup.InputError
	if !errors.As(err, &ie) || ie.Field != backup.FieldMember || !strings.Contains(err.Error(), `member "learner": is a learner`) {
		t.Errorf("naming a learner: %v", err)
	}
	// Given only the learner's endpoint, no voting member is reachable.
	_, err = backup.Save(ctx, store, backup.SaveConfig{Endpoints: learner.Endpoints(), Dial: dialer(t), CommandTimeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "no voting member") {
		t.Errorf("only a learner's endpoint: %v", err)
	}
	m, err := backup.Save(ctx, store, backup.SaveConfig{Endpoints: eps, Dial: dialer(t), CommandTimeout: 5 * time.Second})
	if err != nil || m.MemberName != c.Members[0].Spec.Name {
		t.Errorf("with a learner among the endpoints: %v, from %q", err, m.MemberName)
	}
}

// TestSaveWithAuth takes a snapshot from a member with auth enabled: the
// snapshot stream carries the user's token like every other request, and
// a user without the root role is refused with etcd's error.
func TestSaveWithAuth(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	cli := c.Client()
	fill(t, cli, "k", 100, 1000)
	etcdtest.EnableAuth(t, cli, "rootpw", "reader:readerpw")
	ctx := context.Background()
	url, dir := fileBucket(t)
	store := openStore(t, url)
	cfg := backup.SaveConfig{Endpoints: c.Endpoints(), Dial: userDialer("reader:readerpw"), CommandTimeout: 5 * time.Second}
	if _, err := backup.Save(ctx, store, cfg); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("save as a user without the root role: %v", err)
	}
	assertEmpty(t, dir)
	cfg.Dial = userDialer("root:rootpw")
	m, err := backup.Save(ctx, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, m.Name)
	if rev, keys := etcdutlStatus(t, path); rev != m.Revision || keys < 100 {
		t.Errorf("etcdutl says revision %d, %d keys; manifest says revision %d", rev, keys, m.Revision)
	}
}
