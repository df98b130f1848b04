package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/objtest"
)

// restoreJSON is the part of `etcdops restore -w json` the tests read.
type restoreJSON struct {
	Snapshot struct {
		Revision int64  `json:"revision"`
		Keys     int64  `json:"keys"`
		KVHash   uint32 `json:"kv_hash"`
		Encoding string `json:"encoding"`
	} `json:"snapshot"`
	Cluster struct {
		Token   string `json:"initial_cluster_token"`
		Members []struct {
			Name       string   `json:"name"`
			ClientURLs []string `json:"client_urls"`
			ConfigFile string   `json:"config_file"`
			DataDir    string   `json:"data_dir"`
		} `json:"members"`
	} `json:"cluster"`
	Revision int64 `json:"revision"`
	Members  []struct {
		Name     string `json:"name"`
		Database string `json:"database"`
	} `json:"members"`
	NextSteps []string `json:"next_steps"`
}

// loopbackCluster returns --initial-cluster and --client-urls for n
// members m0… on free loopback ports, and the client URLs.
func loopbackCluster(t *testing.T, n int) (string, string, []string) {
	var peers, clients, urls []string
	for i := 0; i < n; i++ {
		p, c := "http://"+etcdtest.FreeAddr(t), "http://"+etcdtest.FreeAddr(t)
		peers = append(peers, fmt.Sprintf("m%d=%s", i, p))
		clients = append(clients, fmt.Sprintf("m%d=%s", i, c))
		urls = append(urls, c)
	}
	return strings.Join(peers, ","), strings.Join(clients, ","), urls
}

// fillKnown writes n keys k000…=value-000… and returns them.
func fillKnown(t *testing.T, endpoints []string, n int) map[string]string {
	cli := etcdtest.NewClient(t, endpoints...)
	want := map[string]string{}
	for i := 0; i < n; i++ {
		k, v := fmt.Sprintf("/data/k%03d", i), fmt.Sprintf("value-%03d", i)
		etcdtest.Put(t, cli, k, v)
		want[k] = v
	}
	return want
}

// startRestored starts one member per config file with bin (etcdops serve
// or stock etcd) and waits until all are healthy.
func startRestored(t *testing.T, bin string, command []string, res restoreJSON) []string {
	t.Helper()
	var procs []*etcdtest.Process
	var endpoints []string
	for _, m := range res.Cluster.Members {
		p := &etcdtest.Process{Binary: bin, Command: append(append([]string{}, command...), "--config-file", m.ConfigFile),
			Spec: etcdtest.MemberSpec{Name: m.Name, ClientURL: m.ClientURLs[0]}}
		p.StartRaw(t)
		procs = append(procs, p)
		endpoints = append(endpoints, m.ClientURLs[0])
	}
	for _, p := range procs {
		p.WaitHealthy(t, 60*time.Second)
	}
	return endpoints
}

// checkRestoredCluster checks that the cluster serves exactly want, that
// every member has the snapshot's KV hash, and that it takes writes.
func checkRestoredCluster(t *testing.T, endpoints []string, want map[string]string, res restoreJSON) {
	t.Helper()
	out := etcdtest.Etcdctl(t, endpoints, "get", "/data/", "--prefix", "-w", "json")
	var got struct {
		Kvs []struct{ Key, Value []byte } `json:"kvs"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Kvs) != len(want) {
		t.Errorf("restored cluster holds %d keys, want %d", len(got.Kvs), len(want))
	}
	for _, kv := range got.Kvs {
		if want[string(kv.Key)] != string(kv.Value) {
			t.Errorf("%s = %q, want %q", kv.Key, kv.Value, want[string(kv.Key)])
		}
	}
	out = etcdtest.Etcdctl(t, endpoints, "endpoint", "hashkv", "--rev", fmt.Sprint(res.Snapshot.Revision), "-w", "json")
	var hashes []struct {
		Endpoint string `json:"Endpoint"`
		HashKV   struct {
			Hash uint32 `json:"hash"`
		} `json:"HashKV"`
	}
	if err := json.Unmarshal([]byte(out), &hashes); err != nil || len(hashes) != len(endpoints) {
		t.Fatalf("hashkv: %v\n%s", err, out)
	}
	for _, h := range hashes {
		if h.HashKV.Hash != res.Snapshot.KVHash {
			t.Errorf("%s: HashKV %d, the restore's KV hash %d", h.Endpoint, h.HashKV.Hash, res.Snapshot.KVHash)
		}
	}
	etcdtest.Etcdctl(t, endpoints, "put", "/after-restore", "ok")
	if got := etcdtest.Etcdctl(t, endpoints[len(endpoints)-1:], "get", "/after-restore", "--print-value-only"); got != "ok\n" {
		t.Errorf("write after restore: %q", got)
	}
	if list := etcdtest.Etcdctl(t, endpoints, "member", "list"); strings.Count(list, ", started, ") != len(endpoints) {
		t.Errorf("member list:\n%s", list)
	}
}

func runRestore(t *testing.T, env []string, args ...string) restoreJSON {
	t.Helper()
	out, errOut, code := runEtcdops(t, env, append([]string{"restore", "-w", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, errOut)
	}
	var res restoreJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("restore -w json: %v\n%s", err, out)
	}
	return res
}

func ageKey(t *testing.T) (string, string) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "age.key")
	if err := os.WriteFile(file, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, id.Recipient().String()
}

// TestRestoreThreeMembersFromMinIO backs up a 3-member cluster, encrypted
// and compressed, to MinIO, restores all three members from it, and starts
// them with `etcdops serve --config-file`.
func TestRestoreThreeMembersFromMinIO(t *testing.T) {
	src := etcdtest.StartEmbedded(t, 3)
	want := fillKnown(t, src.Endpoints(), 100)
	s3 := objtest.S3(t)
	bucket := s3.NewBucket(t)
	key, recipient := ageKey(t)
	if _, errOut, code := runEtcdops(t, s3.Env, "backup", "save", "--endpoints="+strings.Join(src.Endpoints(), ","), "--to", bucket,
		"--tag", "prod", "--compress", "--age-recipient", recipient); code != 0 {
		t.Fatalf("backup save: %s", errOut)
	}
	src.Stop()

	cluster, clients, _ := loopbackCluster(t, 3)
	dir := t.TempDir()
	res := runRestore(t, s3.Env, "--from", bucket, "--snapshot", "latest", "--tag", "prod", "--identity", key,
		"--initial-cluster", cluster, "--client-urls", clients, "--data-dir-template", filepath.Join(dir, "{name}.etcd"))
	if res.Snapshot.Encoding != "zstd+age" || res.Snapshot.Keys != 100 || len(res.Members) != 3 {
		t.Fatalf("restore result %+v", res)
	}
	if !strings.HasPrefix(res.Cluster.Token, "etcd-restore-") {
		t.Errorf("default token %q is not a fresh one", res.Cluster.Token)
	}
	endpoints := startRestored(t, etcdtest.EtcdopsBin(t), []string{"serve"}, res)
	checkRestoredCluster(t, endpoints, want, res)
}

// TestRestoreInteropWithStockTools restores a snapshot of stock `etcdctl
// snapshot save` one member at a time (--name, as on each host), and starts
// stock etcd on the data dirs and config files that etcdops wrote.
func TestRestoreInteropWithStockTools(t *testing.T) {
	src := etcdtest.StartEmbedded(t, 1)
	want := fillKnown(t, src.Endpoints(), 50)
	snap := filepath.Join(t.TempDir(), "backup.db")
	etcdtest.Etcdctl(t, src.Endpoints(), "snapshot", "save", snap)
	src.Stop()

	cluster, clients, _ := loopbackCluster(t, 3)
	dir := t.TempDir()
	var res restoreJSON
	for _, name := range []string{"m0", "m1", "m2"} {
		r := runRestore(t, nil, "--from", snap, "--name", name, "--initial-cluster", cluster, "--client-urls", clients,
			"--initial-cluster-token", "interop", "--data-dir-template", filepath.Join(dir, "{name}", "data"), "--bump-revision", "1000", "--mark-compacted")
		if len(r.Members) != 1 || r.Members[0].Name != name || r.Members[0].Database != "restored" {
			t.Fatalf("restore --name %s wrote %+v", name, r.Members)
		}
		res = r
	}
	if res.Revision != res.Snapshot.Revision+1000 {
		t.Errorf("revision %d after --bump-revision 1000 of %d", res.Revision, res.Snapshot.Revision)
	}
	endpoints := startRestored(t, etcdtest.Tool(t, "etcd"), nil, res)
	// With the revision bumped and compacted, hashes are no longer those of
	// the snapshot's revision; keys and writes still are.
	out := etcdtest.Etcdctl(t, endpoints, "get", "/data/", "--prefix", "--keys-only", "-w", "json")
	var count struct {
		Count  int `json:"count"`
		Header struct {
			Revision int64 `json:"revision"`
		} `json:"header"`
	}
	if err := json.Unmarshal([]byte(out), &count); err != nil || count.Count != len(want) || count.Header.Revision < res.Revision {
		t.Errorf("restored cluster: %d keys at revision %d (%v); want %d keys, revision ≥ %d", count.Count, count.Header.Revision, err, len(want), res.Revision)
	}
	if _, err := etcdtest.RunEtcdctl(t, endpoints, "get", "/data/k000", "--rev", fmt.Sprint(res.Snapshot.Revision)); err == nil ||
		!strings.Contains(err.Error(), "compacted") {
		t.Errorf("a read at the snapshot's revision after --mark-compacted: %v, want compacted", err)
	}
	etcdtest.Etcdctl(t, endpoints, "put", "/after-restore", "ok")
}

func TestRestoreBadInput(t *testing.T) {
	src := etcdtest.StartEmbedded(t, 1)
	fillKnown(t, src.Endpoints(), 5)
	bucketDir := t.TempDir()
	bucket := "file://" + bucketDir
	_, recipient := ageKey(t)
	if _, errOut, code := runEtcdops(t, nil, "backup", "save", "--endpoints="+src.Endpoints()[0], "--to", bucket, "--tag", "prod",
		"--age-recipient", recipient); code != 0 {
		t.Fatalf("backup save: %s", errOut)
	}
	otherKey, _ := ageKey(t)
	plain := filepath.Join(t.TempDir(), "plain.db")
	etcdtest.Etcdctl(t, src.Endpoints(), "snapshot", "save", plain)
	b, _ := os.ReadFile(plain)
	b[len(b)/2] ^= 0xff
	corrupt := filepath.Join(t.TempDir(), "corrupt.db")
	os.WriteFile(corrupt, b, 0o600)
	existing := t.TempDir()
	os.MkdirAll(filepath.Join(existing, "m0.etcd", "member"), 0o700)

	const cluster = "m0=http://127.0.0.1:42380,m1=http://127.0.0.1:42381"
	target := t.TempDir()
	tmpl := filepath.Join(target, "{name}.etcd")
	base := []string{"restore", "--data-dir-template", tmpl, "--client-urls", "m0=http://127.0.0.1:42379,m1=http://127.0.0.1:42389"}
	tests := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"malformed initial cluster", []string{"--from", plain, "--initial-cluster", "m0:http://h:2380"}, `expected name=peerURL`, 2},
		{"duplicate names", []string{"--from", plain, "--initial-cluster", "m0=http://h:2380,m0=http://h:2381"}, "member m0 is listed twice", 2},
		{"duplicate peer URLs", []string{"--from", plain, "--initial-cluster", "m0=http://h:2380,m1=http://h:2380"}, "the same peer URL", 2},
		{"name not in cluster", []string{"--from", plain, "--initial-cluster", cluster, "--name", "m9"}, "not a member of the initial cluster", 2},
		{"template without name", []string{"--from", plain, "--initial-cluster", cluster, "--data-dir-template", target + "/etcd"}, "expected {name} in it", 2},
		{"bump without mark", []string{"--from", plain, "--initial-cluster", cluster, "--bump-revision", "10"}, "--mark-compacted", 2},
		{"bad number", []string{"--from", plain, "--initial-cluster", cluster, "--bump-revision", "lots"}, "bump-revision", 2},
		{"no source", []string{"--initial-cluster", cluster}, "--from: expected a snapshot file or a bucket URL", 2},
		{"missing snapshot name", []string{"--from", bucket, "--initial-cluster", cluster}, "--snapshot: expected a snapshot NAME or latest", 2},
		{"unreadable identity", []string{"--from", bucket, "--snapshot", "latest", "--identity", "/nonexistent", "--initial-cluster", cluster}, "--identity", 2},
		{"snapshot fails its hash", []string{"--from", corrupt, "--initial-cluster", cluster}, "sha256 mismatch", 1},
		{"wrong age identity", []string{"--from", bucket, "--snapshot", "latest", "--identity", otherKey, "--initial-cluster", cluster}, "did not match any of the recipients", 1},
		{"encrypted without identity", []string{"--from", bucket, "--snapshot", "latest", "--initial-cluster", cluster}, "--identity", 2},
		{"no such snapshot", []string{"--from", bucket, "--snapshot", "prod_2020-01-01_00-00-00.db", "--initial-cluster", cluster}, "no such snapshot", 1},
		{"tag without snapshots", []string{"--from", bucket, "--snapshot", "latest", "--tag", "staging", "--initial-cluster", cluster}, `no complete snapshot of tag "staging"`, 1},
		{"missing file", []string{"--from", filepath.Join(target, "nope.db"), "--initial-cluster", cluster}, "no such file", 1},
		{"existing data dir", []string{"--from", plain, "--initial-cluster", cluster, "--data-dir-template", filepath.Join(existing, "{name}.etcd")}, "exists and is not empty: restore never overwrites it; add --move-aside", 1},
	}
	if fs := tmpfs(t, "ro,size=1m"); fs != "" {
		tests = append(tests, struct {
			name string
			args []string
			want string
			code int
		}{"read-only filesystem", []string{"--from", plain, "--initial-cluster", cluster, "--data-dir-template", filepath.Join(fs, "{name}")}, "read-only file system", 1})
	}
	if fs := tmpfs(t, "size=8m"); fs != "" {
		tests = append(tests, struct {
			name string
			args []string
			want string
			code int
		}{"full filesystem", []string{"--from", plain, "--initial-cluster", cluster, "--data-dir-template", filepath.Join(fs, "{name}")}, "not enough space", 1})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := runEtcdops(t, nil, append(append([]string{}, base...), tt.args...)...)
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			last := lines[len(lines)-1]
			if code != tt.code || !strings.Contains(last, tt.want) || !strings.HasPrefix(last, "etcdops: restore: ") {
				t.Errorf("exit %d, last line %q; want exit %d and an etcdops error containing %q\nstderr:\n%s", code, last, tt.code, tt.want, errOut)
			}
			if entries, _ := os.ReadDir(target); len(entries) > 0 {
				t.Errorf("bad input wrote %v", entries)
			}
		})
	}
	if entries, _ := os.ReadDir(filepath.Join(existing, "m0.etcd")); len(entries) != 1 {
		t.Errorf("the existing data dir changed: %v", entries)
	}
	// A dry run checks everything, prints the plan and writes nothing.
	out, errOut, code := runEtcdops(t, nil, append(base, "--from", plain, "--initial-cluster", cluster, "--dry-run")...)
	if code != 0 || !strings.Contains(out, "dry run: nothing written") || !strings.Contains(out, "5 keys") {
		t.Errorf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	if entries, _ := os.ReadDir(target); len(entries) > 0 {
		t.Errorf("a dry run wrote %v", entries)
	}
}

// tmpfs mounts a tmpfs with options for the test, or returns "" where the
// test may not mount (not root).
func tmpfs(t *testing.T, options string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", options, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Logf("no tmpfs (%v: %s): skipping the filesystem cases", err, out)
		return ""
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// restoreKilledMidway kills a restore while it writes, checks that nothing
// that looks like a data dir is left, and reruns it (a fault matrix row).
func restoreKilledMidway(t *testing.T, _ *faultFixture) {
	src := etcdtest.StartEmbedded(t, 1)
	cli := etcdtest.NewClient(t, src.Endpoints()...)
	for i := 0; i < 400; i++ {
		etcdtest.Put(t, cli, fmt.Sprintf("/big/%03d", i), strings.Repeat("x", 64<<10))
	}
	snap := filepath.Join(t.TempDir(), "snap.db")
	etcdtest.Etcdctl(t, src.Endpoints(), "snapshot", "save", snap)
	src.Stop()

	cluster, clients, _ := loopbackCluster(t, 3)
	dir := t.TempDir()
	args := []string{"restore", "--from", snap, "--initial-cluster", cluster, "--client-urls", clients,
		"--initial-cluster-token", "rerun", "--data-dir-template", filepath.Join(dir, "{name}.etcd"), "-w", "json"}
	cmd := exec.Command(etcdtest.EtcdopsBin(t), args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it as soon as it writes.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m, _ := filepath.Glob(filepath.Join(dir, "*.restoring-*")); len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the restore wrote nothing in a minute")
		}
		time.Sleep(time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for _, e := range list(t, dir) {
		if !strings.Contains(e, ".restoring-") {
			t.Errorf("a killed restore left %s", e)
		}
	}

	res := runRestore(t, nil, args[1:len(args)-2]...)
	got := list(t, dir)
	if strings.Join(got, " ") != "m0.env m0.etcd m0.yml m1.env m1.etcd m1.yml m2.env m2.etcd m2.yml" {
		t.Errorf("after the rerun: %v", got)
	}
	for _, m := range res.Cluster.Members {
		st, err := exec.Command(etcdtest.Tool(t, "etcdutl"), "snapshot", "status", filepath.Join(m.DataDir, "member", "snap", "db"), "-w", "json").Output()
		if err != nil || !strings.Contains(string(st), fmt.Sprintf(`"revision":%d`, res.Snapshot.Revision)) {
			t.Errorf("%s: etcdutl snapshot status: %v %s", m.Name, err, st)
		}
	}
}

func list(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestRestoreWalkthroughExample runs examples/restore/walkthrough.sh, the
// disaster recovery of README.md on one machine.
func TestRestoreWalkthroughExample(t *testing.T) {
	var ports []string
	for i := 0; i < 6; i++ {
		ports = append(ports, strings.Split(etcdtest.FreeAddr(t), ":")[1])
	}
	cmd := exec.Command("bash", filepath.Join("..", "..", "examples", "restore", "walkthrough.sh"))
	cmd.Env = append(os.Environ(), "ETCDOPS="+etcdtest.EtcdopsBin(t), "ETCDCTL="+etcdtest.Tool(t, "etcdctl"),
		"PORTS="+strings.Join(ports, " "), "WORK="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasSuffix(string(out), "restored cluster serves every key and takes writes\n") {
		t.Fatalf("walkthrough: %v\n%s", err, out)
	}
}

// TestRestoreWithTLS restores members that serve clients and peers over
// TLS: the generated configs carry the certificates, `etcdops serve`
// accepts them, and the members form their cluster.
func TestRestoreWithTLS(t *testing.T) {
	src := etcdtest.StartEmbedded(t, 1)
	want := fillKnown(t, src.Endpoints(), 10)
	snap := filepath.Join(t.TempDir(), "snap.db")
	etcdtest.Etcdctl(t, src.Endpoints(), "snapshot", "save", snap)
	src.Stop()

	ca := etcdtest.NewCA(t)
	var peers, clients []string
	for i := 0; i < 3; i++ {
		ca.Issue(t, fmt.Sprintf("m%d", i))
		peers = append(peers, fmt.Sprintf("m%d=https://%s", i, etcdtest.FreeAddr(t)))
		clients = append(clients, fmt.Sprintf("m%d=https://%s", i, etcdtest.FreeAddr(t)))
	}
	client := ca.Issue(t, "client")
	cert, key := filepath.Join(ca.Dir, "{name}.pem"), filepath.Join(ca.Dir, "{name}-key.pem")
	res := runRestore(t, nil, "--from", snap, "--initial-cluster", strings.Join(peers, ","), "--client-urls", strings.Join(clients, ","),
		"--data-dir-template", filepath.Join(t.TempDir(), "{name}"),
		"--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca.CertFile, "--client-cert-auth",
		"--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", ca.CertFile, "--peer-client-cert-auth")

	var procs []*etcdtest.Process
	var endpoints []string
	for _, m := range res.Cluster.Members {
		tls := &etcdtest.TLSFiles{CAFile: ca.CertFile, CertFile: client.CertFile, KeyFile: client.KeyFile}
		p := &etcdtest.Process{Binary: etcdtest.EtcdopsBin(t), Command: []string{"serve", "--config-file", m.ConfigFile},
			Spec: etcdtest.MemberSpec{Name: m.Name, ClientURL: m.ClientURLs[0], TLS: tls}}
		p.StartRaw(t)
		procs = append(procs, p)
		endpoints = append(endpoints, m.ClientURLs[0])
	}
	for _, p := range procs {
		p.WaitHealthy(t, 60*time.Second)
	}
	tlsFlags := []string{"--cacert=" + ca.CertFile, "--cert=" + client.CertFile, "--key=" + client.KeyFile}
	for k, v := range want {
		if got := etcdtest.Etcdctl(t, endpoints, append(tlsFlags, "get", k, "--print-value-only")...); got != v+"\n" {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	etcdtest.Etcdctl(t, endpoints, append(tlsFlags, "put", "/after-restore", "ok")...)
}
