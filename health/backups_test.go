package health

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
)

func TestParseSnapshotName(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		name string
		tag  string
		time time.Time
		ok   bool
	}{
		{"etcd-1_2026-11-21_04-00-00.db", "etcd-1", at("2026-11-21T04:00:00Z"), true},
		{"etcd-1_2026-11-21_04-00-00.db.zst", "etcd-1", at("2026-11-21T04:00:00Z"), true},
		{"etcd-1_2026-11-21_04-00-00.db.zst.age", "etcd-1", at("2026-11-21T04:00:00Z"), true},
		{"etcd-1_2026-11-21_04-00-00.db.age", "etcd-1", at("2026-11-21T04:00:00Z"), true},
		{"prod/etcd-1_2026-11-21_04-00-00.db", "etcd-1", at("2026-11-21T04:00:00Z"), true},
		{"a_b_2026-01-02_03-04-05.db", "a_b", at("2026-01-02T03:04:05Z"), true},
		{"etcd-1_2026-11-21_04-00-00.db.zst.json", "", time.Time{}, false},
		{"etcd-1_2026-11-21_04-00-00.db.part", "", time.Time{}, false},
		{"etcd-1_2026-13-21_04-00-00.db", "", time.Time{}, false},
		{"_2026-11-21_04-00-00.db", "", time.Time{}, false},
		{"etcd-1-2026-11-21_04-00-00.db", "", time.Time{}, false},
		{"notes.txt", "", time.Time{}, false},
	}
	for _, tt := range tests {
		tag, tm, ok := ParseSnapshotName(tt.name)
		if tag != tt.tag || !tm.Equal(tt.time) || ok != tt.ok || ok && tm.Location() != time.UTC {
			t.Errorf("ParseSnapshotName(%q) = %q %v %v, want %q %v %v", tt.name, tag, tm, ok, tt.tag, tt.time, tt.ok)
		}
	}
}

// put creates empty objects named names in b.
func put(t *testing.T, b *blob.Bucket, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := b.WriteAll(context.Background(), n, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBucketSourceNewest(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	src := &BucketSource{Bucket: b}
	if _, err := src.Newest(ctx, ""); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("empty bucket: %v, want ErrNoSnapshot", err)
	}
	put(t, b,
		"m0_2026-11-20_04-00-00.db.zst", "m0_2026-11-20_04-00-00.db.zst.json",
		"m0_2026-11-21_04-00-00.db.zst", "m0_2026-11-21_04-00-00.db.zst.json",
		"m0_2026-11-21_08-00-00.db.zst", // no manifest yet: still being written
		"m1_2026-11-21_06-00-00.db", "m1_2026-11-21_06-00-00.db.json",
		"m1_2026-11-21_09-00-00.db.zst.age.part", "README",
	)
	tests := []struct{ tag, want string }{
		{"", "m1_2026-11-21_06-00-00.db"},
		{"m0", "m0_2026-11-21_04-00-00.db.zst"},
		{"m1", "m1_2026-11-21_06-00-00.db"},
	}
	for _, tt := range tests {
		snap, err := src.Newest(ctx, tt.tag)
		if err != nil || snap.Name != tt.want {
			t.Errorf("Newest(%q) = %+v, %v; want %s", tt.tag, snap, err, tt.want)
		}
	}
	if _, err := src.Newest(ctx, "m2"); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("Newest(m2) = %v, want ErrNoSnapshot", err)
	}
}

func TestBucketSourceFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"m0_2026-11-21_04-00-00.db.zst", "m0_2026-11-21_04-00-00.db.zst.json"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, err := fileblob.OpenBucket(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	snap, err := (&BucketSource{Bucket: b}).Newest(context.Background(), "m0")
	if err != nil || snap.Tag != "m0" || !snap.Time.Equal(time.Date(2026, 11, 21, 4, 0, 0, 0, time.UTC)) {
		t.Errorf("Newest = %+v, %v", snap, err)
	}
}
