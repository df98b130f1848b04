package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/etcdops/etcdops/internal/etcdtest"
)

// faultRow is one row of the fault matrix: an operation, the fault it
// meets, and what the test shows to hold.
type faultRow struct {
	name  string // the subtest of TestFaultMatrix
	op    string
	fault string
	holds string
	run   func(t *testing.T, fx *faultFixture)
}

// faultMatrix is the fault matrix; docs/reliability.md shows it.
var faultMatrix = []faultRow{
	{"serve-killed-single", "`serve`, a single member", "SIGKILL under 300 writes/s (real fsync), then restarted",
		"every acknowledged write reads back", serveKilled(1)},
	{"serve-killed-one-of-three", "`serve`, the leader of three members", "SIGKILL under 300 writes/s (real fsync); the others elect a leader and go on; restarted",
		"every acknowledged write reads back, also through the restarted member", serveKilled(3)},
	{"fetch-killed", "`backup fetch` from MinIO", "SIGKILL mid-download (paused by a proxy after 4 MiB)",
		"no file at the target; the rerun succeeds and leaves only the file; etcdutl reads the manifest's revision from it", fetchKilled},
	{"restore-killed", "`restore` of three members", "SIGKILL as soon as it writes",
		"nothing but `*.restoring-*` left; the rerun writes every data dir and config; etcdutl reads the snapshot's revision from each", restoreKilledMidway},
	{"save-full-disk", "`backup save` to file://", "the filesystem fills up (4 MiB tmpfs, 10 MiB snapshot)",
		"exit 1 naming `no space left on device`; nothing left in the directory; all its space free again", saveFullDisk},
	{"fetch-full-disk", "`backup fetch`", "the target filesystem fills up (4 MiB tmpfs)",
		"exit 1 naming `no space left on device`; no file, no `.part`; all space free again", fetchFullDisk},
	{"restore-full-disk", "`restore`", "too little space for the member (32 MiB tmpfs)",
		"exit 1 naming `not enough space` before anything is written; the filesystem untouched", restoreFullDisk},
	{"save-dead-endpoint", "`backup save` to file://", "its only endpoint refuses connections",
		"exit 1 naming `connection refused` (what the client's retries met, not only their deadline); nothing written", saveDeadEndpoint},
	{"save-read-only", "`backup save` to file://", "the bucket directory is on a read-only mount",
		"exit 1 naming `read-only file system`; nothing written", saveReadOnly},
	{"fetch-read-only", "`backup fetch`", "the target is on a read-only mount",
		"exit 1 naming `read-only file system`; nothing written", fetchReadOnly},
	{"restore-read-only", "`restore`", "the data dirs are on a read-only mount",
		"exit 1 naming `read-only file system`; nothing written", restoreReadOnly},
	{"save-permission-denied", "`backup save` to file://", "run as nobody, the bucket directory is root's (0755)",
		"exit 1 naming `permission denied`; nothing written", savePermissionDenied},
	{"fetch-permission-denied", "`backup fetch`", "run as nobody, the target directory is root's (0755)",
		"exit 1 naming `permission denied`; nothing written", fetchPermissionDenied},
	{"restore-permission-denied", "`restore`", "run as nobody, the data dir's parent is root's (0755)",
		"exit 1 naming `permission denied`; nothing written", restorePermissionDenied},
	{"save-killed-file", "`backup save` to file://", "SIGKILL mid-upload (the snapshot stream paused by a proxy after 9 MiB)",
		"nothing visible; the next save succeeds; prune leaves only its snapshot and manifest in the directory", saveKilled("file")},
	{"save-killed-s3", "`backup save` to MinIO", "SIGKILL mid-upload (paused after 9 MiB)",
		"nothing visible; the next save succeeds; after prune only its objects and no multipart upload remain", saveKilled("s3")},
	{"save-killed-gs", "`backup save` to fake-gcs-server", "SIGKILL mid-upload (paused after 9 MiB)",
		"nothing visible; the next save succeeds and verifies; after prune only its objects remain", saveKilled("gs")},
	{"save-killed-azblob", "`backup save` to Azurite", "SIGKILL mid-upload (paused after 9 MiB)",
		"nothing visible; the next save succeeds and verifies; after prune only its objects remain", saveKilled("azblob")},
	{"member-killed-file", "`backup save` to file://", "the member streaming the snapshot killed (SIGKILL) after 3 MiB",
		"exit 1; nothing visible", memberKilledMidStream("file")},
	{"member-killed-s3", "`backup save` to MinIO", "the member streaming the snapshot killed (SIGKILL) after 3 MiB",
		"exit 1; nothing visible", memberKilledMidStream("s3")},
	{"member-killed-gs", "`backup save` to fake-gcs-server", "the member streaming the snapshot killed (SIGKILL) after 3 MiB",
		"exit 1; nothing visible", memberKilledMidStream("gs")},
	{"member-killed-azblob", "`backup save` to Azurite", "the member streaming the snapshot killed (SIGKILL) after 3 MiB",
		"exit 1; nothing visible", memberKilledMidStream("azblob")},
	{"leader-change-file", "`backup save` to file://", "the leadership moves to the member streaming the snapshot after 3 MiB",
		"the save completes and verifies", leaderChangeMidStream("file")},
	{"leader-change-s3", "`backup save` to MinIO", "the leadership moves to the member streaming the snapshot after 3 MiB",
		"the save completes and verifies", leaderChangeMidStream("s3")},
	{"leader-change-gs", "`backup save` to fake-gcs-server", "the leadership moves to the member streaming the snapshot after 3 MiB",
		"the save completes and verifies", leaderChangeMidStream("gs")},
	{"leader-change-azblob", "`backup save` to Azurite", "the leadership moves to the member streaming the snapshot after 3 MiB",
		"the save completes and verifies", leaderChangeMidStream("azblob")},
	{"upload-reset", "`backup save` to MinIO", "every connection reset (RST) after 2 MiB of upload",
		"exit 1; nothing visible; the next save with --keep-last aborts the multipart upload the failing bucket kept", bucketFailsDuringUpload("s3", reset)},
	{"upload-close", "`backup save` to MinIO", "every connection closed (FIN) after 2 MiB of upload",
		"exit 1; nothing visible; the next save with --keep-last aborts the multipart upload the failing bucket kept", bucketFailsDuringUpload("s3", hangUp)},
	{"upload-stall", "`backup save` to MinIO", "every connection stalled (open, silent) after 2 MiB of upload; `--stall-timeout 5s`",
		"exit 1 naming `bucket stalled: no byte moved for 5s`; nothing visible; the next save with --keep-last aborts the multipart upload left behind", bucketFailsDuringUpload("s3", stall)},
	{"save-silent-bucket", "`backup save` to S3", "the bucket's endpoint accepts connections and never answers; `--stall-timeout 5s`",
		"exit 1 naming `bucket stalled: no answer for 5s`", bucketSilent("save")},
	{"fetch-silent-bucket", "`backup fetch` from S3", "the bucket's endpoint accepts connections and never answers; `--stall-timeout 5s`",
		"exit 1 naming `bucket stalled: no answer for 5s`; no file, no `.part`", bucketSilent("fetch")},
	{"download-reset", "`backup fetch` from MinIO", "every connection reset (RST) after 2 MiB of download",
		"exit 1; no file, no `.part`", bucketFailsDuringDownload("s3", reset)},
	{"download-close", "`backup fetch` from MinIO", "every connection closed (FIN) after 2 MiB of download",
		"exit 1; no file, no `.part`", bucketFailsDuringDownload("s3", hangUp)},
	{"download-stall", "`backup fetch` from MinIO", "every connection stalled (open, silent) after 2 MiB of download; `--stall-timeout 5s`",
		"exit 1 naming `bucket stalled: no byte moved for 5s`; no file, no `.part`", bucketFailsDuringDownload("s3", stall)},
	{"upload-stall-gs", "`backup save` to fake-gcs-server", "every connection stalled after 2 MiB of upload; `--stall-timeout 5s`",
		"exit 1 naming `bucket stalled: no byte moved for 5s`; nothing visible; the next save succeeds", bucketFailsDuringUpload("gs", stall)},
	{"upload-stall-azblob", "`backup save` to Azurite", "every connection stalled after 2 MiB of upload; `--stall-timeout 5s`",
		"exit 1 naming `bucket stalled: no byte moved for 5s`; nothing visible; the next save succeeds", bucketFailsDuringUpload("azblob", stall)},
	{"upload-reset-gs", "`backup save` to fake-gcs-server", "every connection reset (RST) after 2 MiB of upload",
		"exit 1 naming the upload (not the member's stream) as what failed; nothing visible; the next save succeeds", bucketFailsDuringUpload("gs", reset)},
	{"upload-reset-azblob", "`backup save` to Azurite", "every connection reset (RST) after 2 MiB of upload",
		"exit 1; nothing visible; the next save succeeds", bucketFailsDuringUpload("azblob", reset)},
	{"download-stall-gs", "`backup fetch` from fake-gcs-server", "every connection stalled after 2 MiB of download; `--stall-timeout 5s`",
		"exit 1 naming `bucket stalled: no byte moved for 5s`; no file, no `.part`", bucketFailsDuringDownload("gs", stall)},
	{"download-reset-azblob", "`backup fetch` from Azurite", "every connection reset (RST) after 2 MiB of download",
		"exit 1; no file, no `.part`", bucketFailsDuringDownload("azblob", reset)},
	{"download-stall-azblob", "`backup fetch` from Azurite", "every connection stalled after 2 MiB of download; `--stall-timeout 5s`",
		"exit 1 naming `bucket stalled: no byte moved for 5s`; no file, no `.part`", bucketFailsDuringDownload("azblob", stall)},
}

// faultFixture is what the rows share: a member holding 10 MiB, a snapshot
// of it, and a file:// bucket holding a backup of it.
type faultFixture struct {
	endpoint string
	snap     string
	bucket   string // file:// URL with one complete backup
}

// TestFaultMatrix runs every row of the fault matrix.
func TestFaultMatrix(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	fillMiB(t, c.Endpoints(), 10)
	fx := &faultFixture{endpoint: c.Endpoints()[0], snap: filepath.Join(t.TempDir(), "snap.db")}
	etcdtest.Etcdctl(t, c.Endpoints(), "snapshot", "save", fx.snap)
	fx.bucket = "file://" + t.TempDir()
	if _, stderr, code := runEtcdops(t, nil, "backup", "save", "--endpoints", fx.endpoint, "--to", fx.bucket); code != 0 {
		t.Fatalf("save: %s", stderr)
	}
	for _, r := range faultMatrix {
		t.Run(r.name, func(t *testing.T) { r.run(t, fx) })
	}
}

// fillMiB writes about mib MiB of 64 KiB values.
func fillMiB(t *testing.T, endpoints []string, mib int) {
	t.Helper()
	cli := etcdtest.NewClient(t, endpoints...)
	for i := range mib * 16 {
		etcdtest.Put(t, cli, fmt.Sprintf("/fill/%05d", i), strings.Repeat(string(rune('a'+i%26)), 64<<10))
	}
}

// failsWith runs etcdops (as nobody when asNobody) and checks that it exits
// 1 with a last stderr line naming want.
func failsWith(t *testing.T, asNobody bool, env []string, want string, args ...string) {
	t.Helper()
	cmd := exec.Command(etcdtest.EtcdopsBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	if asNobody {
		cmd.Path = nobodyCopy(t, cmd.Path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		cmd.Dir = os.TempDir()
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Run()
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	last := lines[len(lines)-1]
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.HasPrefix(last, "etcdops: ") || !strings.Contains(last, want) {
		t.Fatalf("exit %d, last line %q; want exit 1 and an error naming %q\nstderr:\n%s", code, last, want, stderr.String())
	}
	t.Log(last)
}

// nobody is the uid and gid of user nobody.
const nobody = 65534

// nobodyCopy copies the binary where nobody may run it.
func nobodyCopy(t *testing.T, bin string) string {
	t.Helper()
	dir := nobodyDir(t)
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "etcdops")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// nobodyDir returns a new root-owned dir that nobody may read but not
// write, removed when the test ends.
func nobodyDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "etcdops-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// assertNothingIn fails if dir holds any file or directory.
func assertNothingIn(t *testing.T, dir string) {
	t.Helper()
	var found []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && p != dir {
			found = append(found, strings.TrimPrefix(p, dir+"/"))
		}
		return nil
	})
	if len(found) > 0 {
		t.Errorf("left behind in %s: %v", dir, found)
	}
}

// assertAllFree fails unless the filesystem of dir has every block free.
func assertAllFree(t *testing.T, dir string) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Bfree != st.Blocks {
		t.Errorf("%s: %d of %d blocks still used", dir, st.Blocks-st.Bfree, st.Blocks)
	}
}

func restoreArgs(snap, dir string) []string {
	return []string{"restore", "--from", snap, "--initial-cluster", "m0=http://127.0.0.1:2380",
		"--data-dir-template", filepath.Join(dir, "{name}.etcd")}
}

func saveFullDisk(t *testing.T, fx *faultFixture) {
	dir := etcdtest.Mount(t, "-t", "tmpfs", "-o", "size=4m", "tmpfs")
	failsWith(t, false, nil, "no space left on device", "backup", "save", "--endpoints", fx.endpoint, "--to", "file://"+dir)
	assertNothingIn(t, dir)
	assertAllFree(t, dir)
}

func fetchFullDisk(t *testing.T, fx *faultFixture) {
	dir := etcdtest.Mount(t, "-t", "tmpfs", "-o", "size=4m", "tmpfs")
	failsWith(t, false, nil, "no space left on device", "backup", "fetch", "--from", fx.bucket, "latest", "--to", filepath.Join(dir, "s.db"))
	assertNothingIn(t, dir)
	assertAllFree(t, dir)
}

func restoreFullDisk(t *testing.T, fx *faultFixture) {
	dir := etcdtest.Mount(t, "-t", "tmpfs", "-o", "size=32m", "tmpfs")
	failsWith(t, false, nil, "not enough space", restoreArgs(fx.snap, dir)...)
	assertNothingIn(t, dir)
	assertAllFree(t, dir)
}

func saveDeadEndpoint(t *testing.T, fx *faultFixture) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	dir := t.TempDir()
	failsWith(t, false, nil, "connection refused", "backup", "save", "--endpoints", dead, "--to", "file://"+dir, "--command-timeout", "2s")
	assertNothingIn(t, dir)
}

func saveReadOnly(t *testing.T, fx *faultFixture) {
	dir := etcdtest.Mount(t, "-t", "tmpfs", "-o", "ro,size=16m", "tmpfs")
	failsWith(t, false, nil, "read-only file system", "backup", "save", "--endpoints", fx.endpoint, "--to", "file://"+dir)
	assertNothingIn(t, dir)
}

func fetchReadOnly(t *testing.T, fx *faultFixture) {
	dir := etcdtest.Mount(t, "-t", "tmpfs", "-o", "ro,size=16m", "tmpfs")
	failsWith(t, false, nil, "read-only file system", "backup", "fetch", "--from", fx.bucket, "latest", "--to", filepath.Join(dir, "s.db"))
	assertNothingIn(t, dir)
}

func restoreReadOnly(t *testing.T, fx *faultFixture) {
	dir := etcdtest.Mount(t, "-t", "tmpfs", "-o", "ro,size=16m", "tmpfs")
	failsWith(t, false, nil, "read-only file system", restoreArgs(fx.snap, dir)...)
	assertNothingIn(t, dir)
}

func savePermissionDenied(t *testing.T, fx *faultFixture) {
	dir := nobodyDir(t)
	failsWith(t, true, nil, "permission denied", "backup", "save", "--endpoints", fx.endpoint, "--to", "file://"+dir)
	assertNothingIn(t, dir)
}

func fetchPermissionDenied(t *testing.T, fx *faultFixture) {
	// nobody may read a copy of the bucket, not write the target.
	src := nobodyDir(t)
	bucketDir := strings.TrimPrefix(fx.bucket, "file://")
	if out, err := exec.Command("cp", "-a", bucketDir+"/.", src).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if out, err := exec.Command("chown", "-R", fmt.Sprint(nobody), src).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	dir := nobodyDir(t)
	failsWith(t, true, nil, "permission denied", "backup", "fetch", "--from", "file://"+src, "latest", "--to", filepath.Join(dir, "s.db"))
	assertNothingIn(t, dir)
}

func restorePermissionDenied(t *testing.T, fx *faultFixture) {
	dir := nobodyDir(t)
	snap := filepath.Join(dir, "snap.db")
	if out, err := exec.Command("cp", fx.snap, snap).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	os.Chown(snap, nobody, nobody)
	target := filepath.Join(dir, "data")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	failsWith(t, true, nil, "permission denied", restoreArgs(snap, target)...)
	assertNothingIn(t, target)
}
