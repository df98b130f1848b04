package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/pitrtest"
	"github.com/etcdops/etcdops/pitr"
)

// TestPointInTimeCommands runs restore and backup fetch of a tag's log as
// a user does: a point-in-time snapshot that the stock etcdutl checks and
// restores into a member whose KV hash at the revision is the source's; a
// dry run that prints the chain; a restore of the log's end that serves the
// source's KV hash; and targets the log cannot reach, refused with exit 2,
// one line naming the recoverable range, and nothing written.
func TestPointInTimeCommands(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.StartEmbedded(t, 1)
	cli := c.Client()
	w := pitrtest.NewWorkload(t, cli, 11)
	w.Run(100)
	dir, store := pitrtest.FileBucket(t)
	bucket := "file://" + dir
	s := pitrtest.Save(t, store, c.Endpoints(), "t", time.Now().UTC().Truncate(time.Second)).Revision
	w.Run(300)
	w.Expire(2)
	end := w.Rev()
	log := pitrtest.WatchLog(t, cli, s+1, end, w.TTLs)
	segs := pitrtest.WriteSegments(t, store, "t", backup.Codec{Compress: true}, log, 50)
	hashAt := func(rev int64) uint32 {
		h, err := cli.HashKV(ctx, c.Endpoints()[0], rev)
		if err != nil {
			t.Fatal(err)
		}
		return h.Hash
	}
	mid := s + (end-s)/2

	// backup fetch to a revision: a plain snapshot for the stock etcdutl.
	file := filepath.Join(t.TempDir(), "mid.db")
	out, errOut, code := runEtcdops(t, nil, "backup", "fetch", "--from", bucket, "--tag", "t", "--to-revision", fmt.Sprint(mid), "--to", file, "--quiet")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("fetched revision %d of tag t", mid)) {
		t.Fatalf("backup fetch --to-revision: exit %d\n%s%s", code, out, errOut)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("fetched file: %v, %v", fi, err)
	}
	status, err := exec.Command(etcdtest.Tool(t, "etcdutl"), "snapshot", "status", file, "-w", "json").Output()
	var st struct{ Revision int64 }
	if err != nil || json.Unmarshal(status, &st) != nil || st.Revision != mid {
		t.Fatalf("etcdutl snapshot status: %s, %v; expected revision %d", status, err, mid)
	}
	specs := etcdtest.SpecsNamed(t, t.TempDir(), "f0")
	if out, err := exec.Command(etcdtest.Tool(t, "etcdutl"), "snapshot", "restore", file, "--data-dir", specs[0].DataDir,
		"--name", "f0", "--initial-cluster", specs[0].InitialCluster, "--initial-cluster-token", specs[0].Token,
		"--initial-advertise-peer-urls", specs[0].PeerURL).CombinedOutput(); err != nil {
		t.Fatalf("etcdutl snapshot restore: %v\n%s", err, out)
	}
	fc := etcdtest.StartEmbeddedSpecs(t, specs)
	if h, err := fc.Client().HashKV(ctx, specs[0].ClientURL, mid); err != nil || h.Hash != hashAt(mid) {
		t.Fatalf("member restored by etcdutl from the fetched snapshot: KV hash %v, %v; the source's at %d: %d", h, err, mid, hashAt(mid))
	}
	fc.Stop()

	// restore --dry-run to a time prints the chain and writes nothing.
	at := log[len(log)/3]
	target := filepath.Join(t.TempDir(), "cluster")
	restoreArgs := func(extra ...string) []string {
		return append([]string{"restore", "--from", bucket, "--tag", "t", "--initial-cluster", "r0=" + specs[0].PeerURL,
			"--client-urls", "r0=" + specs[0].ClientURL, "--data-dir-template", filepath.Join(target, "{name}.etcd"), "--quiet"}, extra...)
	}
	if at.Received.Equal(log[len(log)/3+1].Received) {
		t.Skip("two revisions received at the same instant")
	}
	out, errOut, code = runEtcdops(t, nil, restoreArgs("--to-time", at.Received.Format(time.RFC3339Nano), "--dry-run")...)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("point in time: revision %d, from snapshot t_", at.Rev)) ||
		!strings.Contains(out, "t_log/") || !strings.Contains(out, "dry run: nothing written") {
		t.Fatalf("restore --to-time --dry-run: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dry run wrote %s: %v", target, err)
	}

	// Targets the log cannot reach: exit 2, one line, nothing written.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{restoreArgs("--to-revision", fmt.Sprint(end+1)), fmt.Sprintf("--to-revision: revision %d is outside the recoverable range: revisions %d-%d", end+1, s, end)},
		{restoreArgs("--to-revision", fmt.Sprint(s-1)), "is outside the recoverable range"},
		{restoreArgs("--to-time", "2001-01-01T00:00:00Z"), "--to-time: 2001-01-01T00:00:00Z is outside the recoverable range"},
		{[]string{"backup", "fetch", "--from", bucket, "--tag", "t", "--to-revision", fmt.Sprint(end + 1), "--to", filepath.Join(target, "x.db")}, "outside the recoverable range"},
	} {
		out, errOut, code := runEtcdops(t, nil, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d, expected 2 and one line with %q\n%s%s", tc.args, code, tc.want, out, errOut)
		}
		if strings.Contains(errOut, " to ?)") {
			t.Errorf("%v: the range's end time is left unknown: %s", tc.args, errOut)
		}
		if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%v wrote %s", tc.args, target)
		}
	}

	// restore to the end of the log: a member that serves the source's
	// KV hash at that revision.
	out, errOut, code = runEtcdops(t, nil, restoreArgs("--to-revision", "latest")...)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("point in time: revision %d", end)) {
		t.Fatalf("restore --to-revision latest: exit %d\n%s%s", code, out, errOut)
	}
	rspecs := etcdtest.SpecsNamed(t, target, "r0")
	rspecs[0].DataDir, rspecs[0].PeerURL, rspecs[0].ClientURL = filepath.Join(target, "r0.etcd"), specs[0].PeerURL, specs[0].ClientURL
	rspecs[0].InitialCluster = "r0=" + specs[0].PeerURL
	rc := etcdtest.StartEmbeddedSpecs(t, rspecs)
	if h, err := rc.Client().HashKV(ctx, specs[0].ClientURL, end); err != nil || h.Hash != hashAt(end) {
		t.Fatalf("restored member: KV hash %v, %v; the source's at %d: %d", h, err, end, hashAt(end))
	}
	checkListAndVerify(t, bucket, dir, segs, s, end, log[len(log)-1].Received)
}

// checkListAndVerify checks what backup list and backup verify --pitr say
// of the log, whole, then with a segment lost and one corrupted.
func checkListAndVerify(t *testing.T, bucket, dir string, segs []pitr.SegmentName, s, end int64, last time.Time) {
	t.Helper()
	out, errOut, code := runEtcdops(t, nil, "backup", "list", "--from", bucket)
	want := fmt.Sprintf("log of t: %d segments; recoverable revisions %d-%d (", len(segs), s, end)
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, last.UTC().Format(time.RFC3339)+")") {
		t.Fatalf("backup list: exit %d, expected %q and the last revision's time\n%s%s", code, want, out, errOut)
	}
	out, errOut, code = runEtcdops(t, nil, "backup", "list", "--from", bucket, "-w", "json")
	var entries []struct {
		Recoverable *struct {
			From     int64      `json:"first_revision"`
			To       int64      `json:"last_revision"`
			FromTime time.Time  `json:"first_time"`
			ToTime   *time.Time `json:"last_time"`
		} `json:"recoverable"`
	}
	if err := json.Unmarshal([]byte(out), &entries); code != 0 || err != nil || len(entries) != 1 || entries[0].Recoverable == nil ||
		entries[0].Recoverable.From != s || entries[0].Recoverable.To != end || entries[0].Recoverable.ToTime == nil || !entries[0].Recoverable.ToTime.Equal(last) {
		t.Fatalf("backup list -w json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	out, errOut, code = runEtcdops(t, nil, "backup", "verify", "--from", bucket, "--pitr")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("verified log of t: %d segments, %d revisions, 0 problems", len(segs), end-s+50)) {
		t.Fatalf("backup verify --pitr: exit %d\n%s%s", code, out, errOut)
	}

	// segs[1] and the segment overlapping it lost, segs[3] corrupted.
	for _, n := range segs {
		if n == segs[1] || n.First < segs[1].First && n.Last >= segs[1].First {
			if err := os.Remove(filepath.Join(dir, n.String())); err != nil {
				t.Fatal(err)
			}
		}
	}
	path := filepath.Join(dir, segs[3].String())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	os.WriteFile(path, b, 0o600)
	out, errOut, code = runEtcdops(t, nil, "backup", "list", "--from", bucket)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("gap %d-", segs[1].First)) || !strings.Contains(out, "(segments missing)") {
		t.Fatalf("backup list with a segment lost: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runEtcdops(t, nil, "backup", "verify", "--from", bucket, "--pitr")
	if code != 1 || !strings.Contains(errOut, segs[3].String()) ||
		!strings.Contains(errOut, fmt.Sprintf("revisions %d-", segs[1].First)) || !strings.Contains(errOut, "no gap records why") {
		t.Fatalf("backup verify --pitr with a segment lost and one corrupted: exit %d, expected 1 naming both\n%s%s", code, out, errOut)
	}
}
