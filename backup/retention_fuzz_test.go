package backup

import (
	"testing"
	"time"
)

// FuzzApplyPolicy: for any retention flags, a policy either is refused or decides once for every
// snapshot, keeps the newest complete one of each tag, and keeps whatever --keep-last keeps.
func FuzzApplyPolicy(f *testing.F) {
	f.Add(3, 0, 7, 4, 12, int64(0), uint8(40), uint16(3600))
	f.Add(0, 24, 0, 0, 0, int64(48*time.Hour), uint8(100), uint16(900))
	f.Add(-1, 0, 0, 0, 0, int64(0), uint8(5), uint16(1))
	f.Add(0, 0, 0, 0, 0, int64(-time.Hour), uint8(5), uint16(60))
	f.Fuzz(func(t *testing.T, last, hourly, daily, weekly, monthly int, within int64, n uint8, step uint16) {
		p := Policy{Last: last, Hourly: hourly, Daily: daily, Weekly: weekly, Monthly: monthly, Within: time.Duration(within)}
		end := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
		snaps := append(series("a", end, time.Duration(step)*time.Second, int(n)), series("b", end, time.Hour, 3)...)
		ds, err := ApplyPolicy(snaps, p, end)
		if err != nil {
			if p.Validate() == nil && !p.Empty() {
				t.Fatalf("%+v refused: %v", p, err)
			}
			return
		}
		if len(ds) != len(snaps) {
			t.Fatalf("%d decisions for %d snapshots", len(ds), len(snaps))
		}
		kept := map[string]int{}
		newest := map[string]time.Time{}
		for _, d := range ds {
			if d.Keep {
				kept[d.Snapshot.Name.Tag]++
			}
			if d.Keep && d.Snapshot.Name.Time.After(newest[d.Snapshot.Name.Tag]) {
				newest[d.Snapshot.Name.Tag] = d.Snapshot.Name.Time
			}
		}
		for _, tag := range []string{"a", "b"} {
			total := 0
			for _, s := range snaps {
				if s.Name.Tag == tag {
					total++
				}
			}
			if total > 0 && !newest[tag].Equal(end) {
				t.Fatalf("%+v: the newest snapshot of %s is not kept", p, tag)
			}
			if want := min(p.Last, total); kept[tag] < want {
				t.Fatalf("%+v: keeps %d of %s, --keep-last alone keeps %d", p, kept[tag], tag, want)
			}
		}
	})
}
