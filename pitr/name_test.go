package pitr

import (
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestSegmentNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		want SegmentName
		ok   bool
	}{
		{"etcd-1_log/00000000000000000005-00000000000000000009.log", SegmentName{Tag: "etcd-1", First: 5, Last: 9, Ext: ".log"}, true},
		{"etcd-1_log/00000000000000000005-00000000000000000005.log.zst.age", SegmentName{Tag: "etcd-1", First: 5, Last: 5, Ext: ".log.zst.age"}, true},
		{"c.1_log/00000000000000000001-09223372036854775807.log.age", SegmentName{Tag: "c.1", First: 1, Last: 1<<63 - 1, Ext: ".log.age"}, true},
		{"etcd-1_log/gap-00000000000000000010-00000000000000000020.json", SegmentName{Tag: "etcd-1", First: 10, Last: 20, Gap: true}, true},
		{"etcd-1_log/gap-00000000000000000010-00000000000000000020.log", SegmentName{}, false},
		{"etcd-1_log/00000000000000000010-00000000000000000020.json", SegmentName{}, false},
		{"etcd-1_log/00000000000000000009-00000000000000000005.log", SegmentName{}, false},
		{"etcd-1_log/00000000000000000000-00000000000000000005.log", SegmentName{}, false},
		{"etcd-1_log/5-9.log", SegmentName{}, false},
		{"etcd-1_log/00000000000000000005-00000000000000000009.log.age.zst", SegmentName{}, false},
		{"etcd-1_log/00000000000000000005-00000000000000000009.log.tmp", SegmentName{}, false},
		{"etcd-1_log/00000000000000000005-09999999999999999999.log", SegmentName{}, false},
		{"et_cd_log/00000000000000000005-00000000000000000009.log", SegmentName{}, false},
		{"etcd-1_2026-11-21_04-00-00.db", SegmentName{}, false},
	} {
		got, ok := ParseSegmentName(tc.name)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseSegmentName(%q) = %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
		if ok && got.String() != tc.name {
			t.Errorf("%q prints back as %q", tc.name, got.String())
		}
	}
}

// Zero-padding puts a listing in revision order.
func TestSegmentNamesSortByRevision(t *testing.T) {
	a := SegmentName{Tag: "t", First: 9, Last: 99, Ext: ".log"}.String()
	b := SegmentName{Tag: "t", First: 100, Last: 100, Ext: ".log"}.String()
	if a >= b {
		t.Fatalf("%s sorts after %s", a, b)
	}
}

func TestSegmentNameCheck(t *testing.T) {
	revs := sampleRevisions() // 5..9
	if err := (SegmentName{Tag: "t", First: 5, Last: 9}).Check(revs); err != nil {
		t.Fatal(err)
	}
	for _, n := range []SegmentName{{Tag: "t", First: 5, Last: 10}, {Tag: "t", First: 4, Last: 9}} {
		if err := n.Check(revs); err == nil {
			t.Errorf("%v accepted revisions 5-9", n)
		}
	}
}

func TestSameChanges(t *testing.T) {
	base := sampleRevisions()[3]
	for name, change := range map[string]func(*mvccpb.KeyValue){
		"key": func(kv *mvccpb.KeyValue) { kv.Key = []byte("other") }, "value": func(kv *mvccpb.KeyValue) { kv.Value = []byte("v") },
		"create": func(kv *mvccpb.KeyValue) { kv.CreateRevision++ }, "version": func(kv *mvccpb.KeyValue) { kv.Version++ },
		"lease": func(kv *mvccpb.KeyValue) { kv.Lease = 7 },
	} {
		other := sampleRevisions()[3]
		change(other.Events[1].Kv)
		if SameChanges(base, other) {
			t.Errorf("a different %s counts as the same", name)
		}
	}
	other := sampleRevisions()[3]
	other.Received = other.Received.Add(1)
	other.Leases = []Lease{{ID: 1, TTL: 2}}
	if !SameChanges(base, other) {
		t.Error("another received time or first-seen lease counts as a change")
	}
}

func FuzzParseSegmentName(f *testing.F) {
	for _, s := range []string{"etcd-1_log/00000000000000000005-00000000000000000009.log.zst",
		"etcd-1_log/gap-00000000000000000010-00000000000000000020.json", "a_b_log/00000000000000000001-00000000000000000001.log"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := ParseSegmentName(s)
		if ok && n.String() != s {
			t.Fatalf("ParseSegmentName(%q) prints back as %q", s, n.String())
		}
	})
}
