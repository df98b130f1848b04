package restore

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdops/etcdops/internal/etcdtest"
)

func plan3(t *testing.T, dir string) *Plan {
	t.Helper()
	p, err := NewPlan(Config{InitialCluster: "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380,c=http://10.0.0.3:2380",
		Token: "tok", DataDirTemplate: filepath.Join(dir, "{name}")})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFullFilesystem(t *testing.T) {
	path, _, _ := makeSnapshot(t, 20)
	s := openPlain(t, path)
	// Room for one member's 64 MB WAL, not for three.
	dir := etcdtest.Mount(t, "-t", "tmpfs", "-o", "size=100m", "tmpfs")
	p := plan3(t, dir)
	if _, err := Run(context.Background(), p, s, Options{}); err == nil || !strings.Contains(err.Error(), "not enough space") {
		t.Errorf("restore onto a small filesystem: %v, want a refusal before writing", err)
	}
	if es, _ := os.ReadDir(dir); len(es) > 0 {
		t.Errorf("the refused restore wrote %v", es)
	}
	// When the filesystem fills up all the same, what was written goes.
	_, err := Run(context.Background(), p, s, Options{skipSpaceCheck: true})
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("restore into a full filesystem: %v", err)
	}
	if es, _ := os.ReadDir(dir); len(es) > 0 {
		t.Errorf("the failed restore left %v", es)
	}
}

func TestReadOnlyFilesystem(t *testing.T) {
	path, _, _ := makeSnapshot(t, 5)
	s := openPlain(t, path)
	dir := etcdtest.Mount(t, "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs")
	_, err := Run(context.Background(), plan3(t, filepath.Join(dir, "etcd")), s, Options{})
	if err == nil || !strings.Contains(err.Error(), "read-only file system") {
		t.Errorf("restore onto a read-only filesystem: %v", err)
	}
}

// TestReflinkOnXFS restores onto XFS, where the members after the first
// get reflinks of its database, and compares them with etcdutl's restores.
func TestReflinkOnXFS(t *testing.T) {
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		t.Skip("no mkfs.xfs (apt-get install xfsprogs)")
	}
	path, _, _ := makeSnapshot(t, 50)
	s := openPlain(t, path)
	img := filepath.Join(t.TempDir(), "xfs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.xfs", "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.xfs: %v %s", err, out)
	}
	dir := etcdtest.Mount(t, "-o", "loop", img)
	p := plan3(t, filepath.Join(dir, "ours"))
	res, err := Run(context.Background(), p, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{DBRestored, DBReflink, DBReflink} {
		if m := res.Members[i]; m.Database != want || i > 0 && m.Checked != DBReflink {
			t.Errorf("member %s: database %s, checked %s; want %s", m.Name, m.Database, m.Checked, want)
		}
	}
	for _, m := range p.Members {
		stock := filepath.Join(dir, "stock", m.Name)
		args := []string{"snapshot", "restore", path, "--data-dir", stock, "--name", m.Name, "--initial-cluster", p.InitialCluster,
			"--initial-advertise-peer-urls", m.PeerURLs[0], "--initial-cluster-token", "tok"}
		if out, err := exec.Command(etcdtest.Tool(t, "etcdutl"), args...).CombinedOutput(); err != nil {
			t.Fatalf("etcdutl: %v\n%s", err, out)
		}
		sameDataDir(t, m.DataDir, stock)
	}
}
