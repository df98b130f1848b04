package backup

import (
	"testing"
	"time"
)

func TestParseName(t *testing.T) {
	at := time.Date(2026, 11, 21, 4, 5, 6, 0, time.UTC)
	tests := []struct {
		in   string
		want Name
		ok   bool
	}{
		{"etcd-1_2026-11-21_04-05-06.db", Name{"etcd-1", at, ".db"}, true},
		{"etcd-1_2026-11-21_04-05-06.db.zst", Name{"etcd-1", at, ".db.zst"}, true},
		{"etcd-1_2026-11-21_04-05-06.db.age", Name{"etcd-1", at, ".db.age"}, true},
		{"linux1.example.com_2026-11-21_04-05-06.db.zst.age", Name{"linux1.example.com", at, ".db.zst.age"}, true},
		{"etcd-1_2026-11-21_04-05-06.db.json", Name{}, false},
		{"etcd-1_2026-11-21_04-05-06.bak", Name{}, false},
		{"etcd-1_2026-13-21_04-05-06.db", Name{}, false},
		{"_2026-11-21_04-05-06.db", Name{}, false},
		{"a_b_2026-11-21_04-05-06.db", Name{}, false},
		{"etcd-1_2026-11-21_04-05-06.db.age.zst", Name{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseName(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseName(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
		if ok && got.String() != tt.in {
			t.Errorf("round trip %q -> %q", tt.in, got.String())
		}
	}
}

func TestSafeTag(t *testing.T) {
	for in, want := range map[string]string{
		"etcd-1": "etcd-1", "linux1": "linux1", "node_a": "node-a", "": "etcd", "-x": "etcd", "a b/c": "a-b-c",
	} {
		got := SafeTag(in)
		if ValidateTag(got) != nil && got != want {
			t.Errorf("SafeTag(%q) = %q, not a valid tag", in, got)
		}
		if got != want {
			t.Errorf("SafeTag(%q) = %q, want %q", in, got, want)
		}
	}
}
