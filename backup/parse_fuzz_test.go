package backup

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzParseName: a name that parses prints back as itself, and one that does not is never listed.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"etcd-1_2026-11-21_04-00-00.db", "a_b_2026-01-01_00-00-00.db.zst.age", "x_2026-13-01_00-00-00.db",
		"etcd-1_2026-11-21_04-00-00.db.json", ".db", "_2026-11-21_04-00-00.db", "etcd-1_2026-11-21_04-00-00.db.age.zst"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := ParseName(s)
		if !ok {
			return
		}
		if n.String() != s {
			t.Fatalf("ParseName(%q) prints back as %q", s, n.String())
		}
		if err := ValidateTag(n.Tag); err != nil {
			t.Fatalf("ParseName(%q) accepted tag %q: %v", s, n.Tag, err)
		}
		if n2, ok := ParseName(n.Manifest()); ok {
			t.Fatalf("a manifest name %q parses as a snapshot %v", n.Manifest(), n2)
		}
	})
}

// FuzzManifest: whatever a bucket holds as a manifest, reading it errs or gives a manifest that
// writes back to the same value.
func FuzzManifest(f *testing.F) {
	m := Manifest{Version: ManifestVersion, Name: "etcd-1_2026-11-21_04-00-00.db", Tag: "etcd-1",
		Time: time.Date(2026, 11, 21, 4, 0, 0, 0, time.UTC), Revision: 42, TotalKeys: 7, RawSize: 20480,
		RawSHA256: strings.Repeat("ab", 32), Compression: "zstd", Encryption: "none"}
	b, _ := m.Marshal()
	f.Add(b)
	f.Add([]byte(`{"revision": -1, "total_keys": -1}`))
	f.Add([]byte(`{"time": "not a time"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Manifest
		if json.Unmarshal(b, &m) != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil {
			return // a time outside what RFC 3339 can write
		}
		var again Manifest
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("a manifest written from %q does not read back: %v", b, err)
		}
		if out2, _ := again.Marshal(); string(out2) != string(out) {
			t.Fatalf("manifest changes on a round trip:\n%s\n%s", out, out2)
		}
	})
}

// FuzzBucketURL: a bucket URL is accepted only with a known scheme, and what messages show of it
// never holds its password.
func FuzzBucketURL(f *testing.F) {
	for _, s := range []string{"file:///var/backups?prefix=a/", "s3://b?region=us-east-1&endpoint=http://127.0.0.1:9000",
		"gs://b", "azblob://c", "mem://", "ftp://x", "::", "s3://user:secret-pw@b", "s3://b?secret_key=abc&x-amz-signature=s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseBucketURL(s)
		if err == nil && !strings.Contains(strings.Join(Schemes, " "), u.Scheme) {
			t.Fatalf("%q accepted with scheme %q", s, u.Scheme)
		}
		if err == nil {
			_ = withDefaults(u).String()
		}
		r := Redact(s)
		if u, _ := url.Parse(s); u != nil && u.User != nil { // bad bucket URLs are shown too
			if pw, ok := u.User.Password(); ok && len(pw) >= 8 && strings.Contains(r, pw) && !strings.Contains(u.Host+u.Path+u.RawQuery, pw) {
				t.Fatalf("Redact(%q) = %q shows the password", s, r)
			}
		}
	})
}
