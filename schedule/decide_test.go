package schedule

import (
	"testing"
	"time"
)

func TestShouldCatchUp(t *testing.T) {
	hourly, _ := ParseSpec("@hourly")
	daily, _ := ParseSpec("30 2 * * *")
	now := utc("2026-11-30T09:17:00Z")
	for _, tc := range []struct {
		name   string
		mode   CatchUp
		spec   Spec
		newest time.Time
		want   bool
	}{
		{"no snapshot yet", CatchUpOnce, hourly, time.Time{}, true},
		{"newest within an interval", CatchUpOnce, hourly, now.Add(-59 * time.Minute), false},
		{"newest exactly one interval old", CatchUpOnce, hourly, now.Add(-time.Hour), false},
		{"newest older than an interval", CatchUpOnce, hourly, now.Add(-61 * time.Minute), true},
		{"days of missed runs: still one", CatchUpOnce, hourly, now.Add(-72 * time.Hour), true},
		{"daily, 20h old", CatchUpOnce, daily, now.Add(-20 * time.Hour), false},
		{"daily, 25h old", CatchUpOnce, daily, now.Add(-25 * time.Hour), true},
		{"none never catches up", CatchUpNone, hourly, now.Add(-72 * time.Hour), false},
		{"none, no snapshot", CatchUpNone, hourly, time.Time{}, false},
	} {
		if got := ShouldCatchUp(tc.mode, tc.spec, tc.newest, now); got != tc.want {
			t.Errorf("%s: ShouldCatchUp = %v, want %v", tc.name, got, tc.want)
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
