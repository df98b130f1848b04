package server

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzConfigFile: any file given as --config-file is loaded or refused with an error; never a panic.
func FuzzConfigFile(f *testing.F) {
	for _, s := range []string{
		"name: a\ndata-dir: /var/lib/etcd\nlisten-client-urls: http://127.0.0.1:2379\nadvertise-client-urls: http://127.0.0.1:2379\n",
		"name: a\nlisten-peer-urls: 'http://127.0.0.1:2380,http://[::1]:2380'\ninitial-cluster: a=http://127.0.0.1:2380\n",
		"client-transport-security:\n  cert-file: /c.pem\n  client-cert-auth: true\n",
		"nmae: typo\n", "listen-client-urls: ftp://x\n", "log-outputs: [stderr]\nquota-backend-bytes: 1e99\n",
		"- a\n- b\n", "a: &x [*x]\n", "heartbeat-interval: -1\nelection-timeout: abc\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "etcd.yml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := loadConfigFile(path)
		if err == nil && cfg == nil {
			t.Fatal("no config and no error")
		}
	})
}
