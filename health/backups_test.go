package health

import (
	"context"
	"errors"
	"testing"

	"gocloud.dev/blob"

	"github.com/etcdops/etcdops/backup"
)

func put(t *testing.T, b *blob.Bucket, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := b.WriteAll(context.Background(), n, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStoreSourceNewest(t *testing.T) {
	ctx := context.Background()
	store, err := backup.OpenStore(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	b := store.Bucket()
	src := &StoreSource{Store: store}
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
