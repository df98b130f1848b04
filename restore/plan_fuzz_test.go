package restore

import (
	"errors"
	"net/url"
	"testing"
)

// FuzzMembers: any --initial-cluster and --client-urls strings give members with a name and URLs
// that parse, or a *ConfigError; never a panic.
func FuzzMembers(f *testing.F) {
	for _, s := range [][2]string{
		{"a=http://127.0.0.1:2380,b=http://127.0.0.1:2381", ""},
		{"a=https://10.0.0.1:2380", "a=https://10.0.0.1:2379"},
		{"a=http://[::1]:2380,b=http://h:1", "b=http://h:2,a=unix:///tmp/s"},
		{"a=", ""}, {"=x", ""}, {"a=http://h:1,a=http://h:2", ""}, {"a b=http://h:1", ""},
		{"a=http://h:1", "c=http://h:2"}, {"a=ftp://h:1", ""}, {",,,", "="},
	} {
		f.Add(s[0], s[1])
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, cluster, clientURLs string) {
		ms, err := Members(Config{InitialCluster: cluster, ClientURLs: clientURLs, DataDirTemplate: dir + "/{name}.etcd"})
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *ConfigError", err, err)
			}
			return
		}
		if len(ms) == 0 {
			t.Fatal("no members and no error")
		}
		for _, m := range ms {
			if m.Name == "" || len(m.PeerURLs) == 0 || len(m.ClientURLs) == 0 || m.DataDir == "" {
				t.Fatalf("incomplete member %+v", m)
			}
			for _, u := range append(append([]string{}, m.PeerURLs...), m.ClientURLs...) {
				if _, err := url.Parse(u); err != nil {
					t.Fatalf("member %s: URL %q does not parse: %v", m.Name, u, err)
				}
			}
		}
	})
}
