package pitr

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/etcdops/etcdops/backup"
)

func TestDecideLog(t *testing.T) {
	seg := func(first, last int64) SegmentName {
		return SegmentName{Tag: "t", First: first, Last: last, Ext: SegmentExt}
	}
	gap := func(first, last int64) SegmentName { return SegmentName{Tag: "t", First: first, Last: last, Gap: true} }
	log := []SegmentName{seg(11, 20), gap(21, 29), seg(30, 40), seg(35, 45), seg(41, 50), seg(51, 60)}
	for _, tc := range []struct {
		name string
		kept []int64
		want []SegmentName
	}{
		{"no kept snapshot: keep all", nil, nil},
		{"kept revisions unknown: keep all", []int64{0}, nil},
		{"oldest kept before the log", []int64{5, 55}, nil},
		{"oldest kept at a segment's last revision", []int64{60, 40}, []SegmentName{seg(11, 20), gap(21, 29), seg(30, 40)}},
		{"straddling segments stay", []int64{42}, []SegmentName{seg(11, 20), gap(21, 29), seg(30, 40)}},
		{"gap wholly before", []int64{29}, []SegmentName{seg(11, 20), gap(21, 29)}},
		{"oldest kept after the log", []int64{70}, log},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []SegmentName
			for _, d := range DecideLog(log, tc.kept) {
				if len(d.Reasons) == 0 || d.Removed {
					t.Errorf("%s: reasons %q, removed %v", d.Name, d.Reasons, d.Removed)
				}
				got = append(got, d.Name)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DecideLog(kept %v) removes %v, want %v", tc.kept, got, tc.want)
			}
		})
	}
}

func TestKeepWithin(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	seg := func(first, last int64) SegmentName {
		return SegmentName{Tag: "t", First: first, Last: last, Ext: SegmentExt}
	}
	gap := func(first, last int64) SegmentName { return SegmentName{Tag: "t", First: first, Last: last, Gap: true} }
	name := func(h int) string {
		return backup.Name{Tag: "t", Time: t0.Add(time.Duration(h) * time.Hour), Ext: ".db"}.String()
	}
	// Hourly snapshots at revisions 10, 20, 30, 40; retention (keep-last 1)
	// keeps the newest only.
	var bases []Base
	decisions := func() []backup.Decision {
		var ds []backup.Decision
		for h := 3; h >= 0; h-- {
			n, _ := backup.ParseName(name(h))
			d := backup.Decision{Snapshot: backup.Snapshot{Name: n}, Reasons: []string{"no rule keeps it"}}
			if h == 3 {
				d.Keep, d.Reasons = true, []string{"newest complete snapshot"}
			}
			ds = append(ds, d)
		}
		other, _ := backup.ParseName(backup.Name{Tag: "u", Time: t0, Ext: ".db"}.String())
		return append(ds, backup.Decision{Snapshot: backup.Snapshot{Name: other}, Reasons: []string{"no rule keeps it"}})
	}
	for h := range 4 {
		bases = append(bases, Base{Name: name(h), Revision: int64(10 * (h + 1)), Time: t0.Add(time.Duration(h) * time.Hour)})
	}
	contiguous := []SegmentName{seg(11, 30), seg(31, 50)}
	holed := []SegmentName{seg(11, 25), gap(26, 29), seg(31, 50)}
	for _, tc := range []struct {
		name   string
		log    []SegmentName
		within time.Duration
		want   []string // kept, newest first
	}{
		{"no log: policy alone", nil, 90 * time.Minute, []string{name(3)}},
		{"the newest snapshot before the window stays", contiguous, 90 * time.Minute, []string{name(3), name(1)}},
		{"a snapshot at the window's start is enough", contiguous, 2 * time.Hour, []string{name(3), name(1)}},
		{"within less than the newest's age: the one before", contiguous, time.Minute, []string{name(3), name(2)}},
		{"a window wider than every snapshot keeps the oldest", contiguous, 48 * time.Hour, []string{name(3), name(0)}},
		{"a snapshot after a hole starts a range and stays", holed, 150 * time.Minute, []string{name(3), name(2), name(0)}},
		{"a hole in the window, its start before it", holed, 90 * time.Minute, []string{name(3), name(2), name(1)}},
		{"a hole before the window needs nothing more", holed, 30 * time.Minute, []string{name(3), name(2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := decisions()
			KeepWithin(ds, Listing{Bases: bases, Log: tc.log}, tc.within)
			var got []string
			for _, d := range ds {
				if d.Snapshot.Name.Tag != "t" {
					if d.Keep {
						t.Errorf("another tag's %s is kept", d.Snapshot.Key())
					}
					continue
				}
				if d.Keep {
					got = append(got, d.Snapshot.Key())
					if len(d.Reasons) == 0 || slices.Contains(d.Reasons, "no rule keeps it") {
						t.Errorf("%s kept with reasons %q", d.Snapshot.Key(), d.Reasons)
					}
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("KeepWithin(%s) keeps %v, want %v", tc.within, got, tc.want)
			}
		})
	}
}
