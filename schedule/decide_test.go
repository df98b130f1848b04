package schedule

import (
	"testing"
	"time"
)

// TestCatchUpSlot: a job catches up at start only when the most recent due
// slot is newer than the newest snapshot, and then for that slot. The
// irregular schedules of issue #14: the interval from now (Sunday to Monday,
// Friday to Monday, a short month) is no measure of what was missed.
func TestCatchUpSlot(t *testing.T) {
	spec := func(s string) Spec {
		sp, err := ParseSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}
	hourly, daily := spec("@hourly"), spec("30 2 * * *")
	sunMonWed, weekdays, monthly := spec("0 0 * * 3,0,1"), spec("0 9 * * 1-5"), spec("0 0 1 * *")
	every := spec("@every 10m")
	now := utc("2026-11-30T09:17:00Z")
	saturday := utc("2026-12-05T10:00:00Z")
	none := time.Time{}
	for _, tc := range []struct {
		name        string
		mode        CatchUp
		spec        Spec
		newest, now time.Time
		want        time.Time // the slot to run; zero for no run
	}{
		{"no snapshot yet", CatchUpOnce, hourly, none, now, utc("2026-11-30T09:00:00Z")},
		{"the due slot saved", CatchUpOnce, hourly, utc("2026-11-30T09:00:00Z"), now, none},
		{"the slot before saved", CatchUpOnce, hourly, utc("2026-11-30T08:00:00Z"), now, utc("2026-11-30T09:00:00Z")},
		{"a manual save after the due slot", CatchUpOnce, hourly, utc("2026-11-30T09:05:13Z"), now, none},
		{"days of missed runs: still one", CatchUpOnce, hourly, now.Add(-72 * time.Hour), now, utc("2026-11-30T09:00:00Z")},
		{"daily, today's saved", CatchUpOnce, daily, utc("2026-11-30T02:30:00Z"), now, none},
		{"daily, yesterday's saved", CatchUpOnce, daily, utc("2026-11-29T02:30:00Z"), now, utc("2026-11-30T02:30:00Z")},
		{"@every, the due slot saved", CatchUpOnce, every, utc("2026-11-30T09:10:00Z"), now, none},
		{"@every, one missed", CatchUpOnce, every, utc("2026-11-30T09:00:00Z"), now, utc("2026-11-30T09:10:00Z")},
		{"Sun,Mon,Wed on Saturday, Wednesday's saved", CatchUpOnce, sunMonWed, utc("2026-12-02T00:00:00Z"), saturday, none},
		{"Sun,Mon,Wed on Saturday, Wednesday's missed", CatchUpOnce, sunMonWed, utc("2026-11-30T00:00:00Z"), saturday, utc("2026-12-02T00:00:00Z")},
		{"weekdays on Monday morning, Friday's saved", CatchUpOnce, weekdays, utc("2026-12-04T09:00:00Z"), utc("2026-12-07T08:00:00Z"), none},
		{"weekdays on Monday morning, Friday's missed", CatchUpOnce, weekdays, utc("2026-12-03T09:00:00Z"), utc("2026-12-07T08:00:00Z"), utc("2026-12-04T09:00:00Z")},
		{"monthly at the end of March, the 1st saved", CatchUpOnce, monthly, utc("2026-03-01T00:00:00Z"), utc("2026-03-31T12:00:00Z"), none},
		{"monthly, February's missed", CatchUpOnce, monthly, utc("2026-02-01T00:00:00Z"), utc("2026-03-31T12:00:00Z"), utc("2026-03-01T00:00:00Z")},
		{"none never catches up", CatchUpNone, hourly, now.Add(-72 * time.Hour), now, none},
		{"none, no snapshot", CatchUpNone, hourly, none, now, none},
	} {
		slot, ok := CatchUpSlot(tc.mode, tc.spec, tc.newest, tc.now)
		if ok != !tc.want.IsZero() || !slot.Equal(tc.want) {
			t.Errorf("%s: CatchUpSlot = %v, %v; want %v", tc.name, slot, ok, tc.want)
		}
	}
}

func TestStale(t *testing.T) {
	now := utc("2026-11-30T09:17:00Z")
	for _, tc := range []struct {
		name   string
		last   time.Time
		maxAge time.Duration
		want   bool
	}{
		{"fresh", now.Add(-time.Minute), time.Hour, false},
		{"old", now.Add(-2 * time.Hour), time.Hour, true},
		{"never succeeded", time.Time{}, time.Hour, true},
		{"no max age", time.Time{}, 0, false},
	} {
		if got := Stale(tc.last, tc.maxAge, now); got != tc.want {
			t.Errorf("%s: Stale = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestParseCatchUpAndJitter(t *testing.T) {
	for in, want := range map[string]CatchUp{"": CatchUpOnce, "once": CatchUpOnce, "none": CatchUpNone} {
		if got, err := ParseCatchUp(in); err != nil || got != want {
			t.Errorf("ParseCatchUp(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseCatchUp("always"); err == nil {
		t.Error("ParseCatchUp(always) accepted")
	}
	for _, tc := range []struct {
		max  time.Duration
		r    float64
		want time.Duration
	}{{0, 0.5, 0}, {time.Minute, 0, 0}, {time.Minute, 0.5, 30 * time.Second}, {time.Minute, 0.9999, 59*time.Second + 994*time.Millisecond}} {
		if got := Jitter(tc.max, tc.r); got != tc.want {
			t.Errorf("Jitter(%v, %v) = %v, want %v", tc.max, tc.r, got, tc.want)
		}
	}
}
