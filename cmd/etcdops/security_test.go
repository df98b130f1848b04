package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	clientv3 "go.etcd.io/etcd/client/v3"
	"gocloud.dev/blob"

	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/objtest"
)

// TestSecurityMutualTLSCluster runs backup, health and a restore against a
// three-member `etcdops serve` cluster with client and peer TLS and client
// certificate auth on both; a client without a certificate is refused.
func TestSecurityMutualTLSCluster(t *testing.T) {
	ca := etcdtest.NewCA(t)
	c := etcdtest.StartProcesses(t, etcdtest.WithTLS(t, etcdtest.Specs(t, 3, t.TempDir()), ca), etcdtest.EtcdopsBin(t), "serve")
	want := map[string]string{}
	pair := ca.Issue(t, "operator")
	files := &etcdtest.TLSFiles{CAFile: ca.CertFile, CertFile: pair.CertFile, KeyFile: pair.KeyFile}
	cli := etcdtest.NewTLSClient(t, files, c.Endpoints()...)
	for i := range 10 {
		k, v := fmt.Sprintf("/data/k%d", i), fmt.Sprintf("value-%d", i)
		etcdtest.Put(t, cli, k, v)
		want[k] = v
	}
	env := []string{"ETCDCTL_ENDPOINTS=" + strings.Join(c.Endpoints(), ","), "ETCDCTL_CACERT=" + ca.CertFile,
		"ETCDCTL_CERT=" + pair.CertFile, "ETCDCTL_KEY=" + pair.KeyFile}
	noCert := env[:2]

	bucket := "file://" + t.TempDir()
	if _, stderr, code := runEtcdops(t, env, "backup", "save", "--to", bucket); code != 0 {
		t.Fatalf("backup save with a client certificate: exit %d: %s", code, stderr)
	}
	if out, stderr, code := runEtcdops(t, env, "health", "--cluster", "-w", "nagios"); code != 0 || !strings.HasPrefix(out, "ETCD OK - ") {
		t.Errorf("health with a client certificate: exit %d: %s%s", code, out, stderr)
	}
	if _, stderr, code := runEtcdops(t, noCert, "backup", "save", "--to", bucket, "--dial-timeout", "2s", "--command-timeout", "2s"); code != 1 {
		t.Errorf("backup save without a client certificate: exit %d, want 1: %s", code, stderr)
	}
	if out, _, code := runEtcdops(t, noCert, "health", "-w", "nagios", "--command-timeout", "2s"); code != 3 {
		t.Errorf("health without a client certificate: exit %d, want 3 (nothing answered): %s", code, out)
	}
	if _, err := etcdtest.RunEtcdctl(t, c.Endpoints(), "--cacert", ca.CertFile, "--command-timeout=2s", "get", "/data/k0"); err == nil {
		t.Error("etcdctl without a client certificate read from the cluster")
	}

	// The backup restores into a new mutual-TLS cluster from restore's
	// generated configs.
	var peers, clients []string
	for i := range 3 {
		name := fmt.Sprintf("r%d", i)
		ca.Issue(t, name)
		peers = append(peers, name+"=https://"+etcdtest.FreeAddr(t))
		clients = append(clients, name+"=https://"+etcdtest.FreeAddr(t))
	}
	cert, key := filepath.Join(ca.Dir, "{name}.pem"), filepath.Join(ca.Dir, "{name}-key.pem")
	res := runRestore(t, nil, "--from", bucket, "--snapshot", "latest", "--initial-cluster", strings.Join(peers, ","),
		"--client-urls", strings.Join(clients, ","), "--data-dir-template", filepath.Join(t.TempDir(), "{name}"),
		"--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca.CertFile, "--client-cert-auth",
		"--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", ca.CertFile, "--peer-client-cert-auth")
	var restored []string
	var procs []*etcdtest.Process
	for _, m := range res.Cluster.Members {
		p := &etcdtest.Process{Binary: etcdtest.EtcdopsBin(t), Command: []string{"serve", "--config-file", m.ConfigFile},
			Spec: etcdtest.MemberSpec{Name: m.Name, ClientURL: m.ClientURLs[0], TLS: files}}
		p.StartRaw(t)
		procs = append(procs, p)
		restored = append(restored, m.ClientURLs[0])
	}
	for _, p := range procs {
		p.WaitHealthy(t, time.Minute)
	}
	rcli := etcdtest.NewTLSClient(t, files, restored...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := rcli.Get(ctx, "/data/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != len(want) {
		t.Errorf("the restored cluster holds %d keys, want %d", len(resp.Kvs), len(want))
	}
	for _, kv := range resp.Kvs {
		if want[string(kv.Key)] != string(kv.Value) {
			t.Errorf("restored %s = %q, want %q", kv.Key, kv.Value, want[string(kv.Key)])
		}
	}
	if _, err := etcdtest.RunEtcdctl(t, restored, "--cacert", ca.CertFile, "--command-timeout=2s", "get", "/data/k0"); err == nil {
		t.Error("etcdctl without a client certificate read from the restored cluster")
	}
}

// TestSecurityNoSecretsShownAndFileModes runs every command with etcd auth
// (the password in ETCDCTL_PASSWORD), MinIO's secret key and an age
// identity, and greps every output, log, manifest and generated file for
// them; it checks the modes of what the commands write.
func TestSecurityNoSecretsShownAndFileModes(t *testing.T) {
	const password, wrongPassword = "pw-Zq8-root-7731", "pw-Kx3-wrong-5519"
	c := etcdtest.StartServeCluster(t, 1)
	ep := c.Endpoints()[0]
	fillMiB(t, c.Endpoints(), 1)
	etcdtest.EnableAuth(t, etcdtest.NewClient(t, ep), password)

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	identity := filepath.Join(work, "identity.txt")
	if err := os.WriteFile(identity, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s3 := objtest.S3(t)
	s3Bucket := s3.NewBucket(t)
	fileDir := filepath.Join(work, "bucket")
	if err := os.Mkdir(fileDir, 0o700); err != nil {
		t.Fatal(err)
	}
	fileBucket := "file://" + fileDir + "?prefix=prod/"
	secrets := []string{password, wrongPassword, id.String()}
	for _, kv := range s3.Env {
		if k, v, _ := strings.Cut(kv, "="); k == "AWS_SECRET_ACCESS_KEY" {
			secrets = append(secrets, v)
		}
	}
	auth := append([]string{"ETCDCTL_ENDPOINTS=" + ep, "ETCDCTL_USER=root", "ETCDCTL_PASSWORD=" + password}, s3.Env...)
	wrong := append([]string{"ETCDCTL_ENDPOINTS=" + ep, "ETCDCTL_USER=root", "ETCDCTL_PASSWORD=" + wrongPassword}, s3.Env...)
	fetched := filepath.Join(work, "fetched", "s.db")
	os.Mkdir(filepath.Dir(fetched), 0o755)
	restored := filepath.Join(work, "restored")
	units := filepath.Join(work, "root")

	shown := map[string]string{} // where → what it shows
	runs := []struct {
		env  []string
		code int
		args []string
	}{
		{auth, 0, []string{"backup", "save", "--to", s3Bucket, "--age-recipient", id.Recipient().String(), "--compress", "--log-level", "debug", "-w", "json"}},
		{auth, 0, []string{"backup", "save", "--to", fileBucket, "--log-level", "debug", "--keep-last", "5"}},
		{wrong, 1, []string{"backup", "save", "--to", s3Bucket, "--log-level", "debug"}},
		{auth, 2, []string{"backup", "save", "--to", s3Bucket, "--age-recipients-file", identity}},
		{auth, 0, []string{"backup", "list", "--from", s3Bucket, "-w", "json"}},
		{auth, 0, []string{"backup", "verify", "--from", s3Bucket, "latest", "--identity", identity, "--log-level", "debug"}},
		{auth, 0, []string{"backup", "fetch", "--from", s3Bucket, "latest", "--to", fetched, "--identity", identity}},
		{auth, 0, []string{"backup", "prune", "--from", s3Bucket, "--keep-last", "1", "--log-level", "debug"}},
		{auth, 0, []string{"health", "--cluster", "-w", "json", "--backups", s3Bucket, "--max-backup-age", "1h"}},
		{auth, 0, []string{"health", "-w", "prometheus"}},
		{wrong, 3, []string{"health", "-w", "table"}},
		{auth, 0, []string{"restore", "--from", s3Bucket, "--snapshot", "latest", "--identity", identity, "--log-level", "debug",
			"--initial-cluster", "r0=http://" + etcdtest.FreeAddr(t), "--data-dir-template", filepath.Join(restored, "{name}.etcd")}},
		{auth, 0, []string{"systemd", "unit", "--name", "m0", "--install", "--root", units}},
	}
	for _, r := range runs {
		out, stderr, code := runIn(t, work, r.env, r.args...)
		if code != r.code {
			t.Errorf("%s: exit %d, want %d\n%s", strings.Join(r.args[:2], " "), code, r.code, stderr)
		}
		shown[strings.Join(r.args[:2], " ")+" output"] += out + stderr
	}
	shown["the member's log"] = c.Procs[0].Output()
	// What the commands wrote: files, and the MinIO objects.
	filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && p != identity && !strings.Contains(p, "/member/") {
			b, _ := os.ReadFile(p)
			shown[p] = string(b)
		}
		return nil
	})
	for _, key := range bucketKeys(t, s3Bucket) {
		shown["object "+key] = readObject(t, s3Bucket, key)
	}
	for where, text := range shown {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("a secret (%.6s…) appears in %s", s, where)
			}
		}
	}

	// Modes: snapshots, manifests and fetched files 0600; data dirs 0700;
	// configuration and environment files 0600 (the unit itself 0644).
	modes := map[string]fs.FileMode{fetched: 0o600, filepath.Join(restored, "r0.etcd"): fs.ModeDir | 0o700,
		filepath.Join(restored, "r0.env"): 0o600, filepath.Join(restored, "r0.yml"): 0o600}
	saved, _ := filepath.Glob(filepath.Join(fileDir, "prod", "m0_*"))
	if len(saved) != 2 {
		t.Errorf("file:// bucket holds %v, want a snapshot and its manifest", saved)
	}
	for _, p := range saved {
		modes[p] = 0o600
	}
	envFiles, _ := filepath.Glob(filepath.Join(units, "etc", "etcdops", "*.env"))
	if len(envFiles) != 1 {
		t.Errorf("systemd unit --install wrote env files %v, want one", envFiles)
	}
	for _, p := range envFiles {
		modes[p] = 0o600
	}
	for p, want := range modes {
		fi, err := os.Stat(p)
		if err != nil {
			t.Error(err)
			continue
		}
		if got := fi.Mode() & (fs.ModeDir | fs.ModePerm); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
	}
}

// readObject returns the content of one object.
func readObject(t *testing.T, bucketURL, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, err := b.NewReader(ctx, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
