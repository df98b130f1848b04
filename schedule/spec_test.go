package schedule

import (
	"strings"
	"testing"
	"time"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestParseSpecNextAndInterval(t *testing.T) {
	from := utc("2026-11-30T09:17:42Z")
	for _, tc := range []struct {
		spec     string
		next     string
		interval time.Duration
		slot     string // Slot(next + 300ms)
	}{
		{"0 * * * *", "2026-11-30T10:00:00Z", time.Hour, "2026-11-30T10:00:00Z"},
		{"*/15 * * * *", "2026-11-30T09:30:00Z", 15 * time.Minute, "2026-11-30T09:30:00Z"},
		{"30 2 * * *", "2026-12-01T02:30:00Z", 24 * time.Hour, "2026-12-01T02:30:00Z"},
		{"@hourly", "2026-11-30T10:00:00Z", time.Hour, "2026-11-30T10:00:00Z"},
		{"@daily", "2026-12-01T00:00:00Z", 24 * time.Hour, "2026-12-01T00:00:00Z"},
		{"@every 30m", "2026-11-30T09:30:00Z", 30 * time.Minute, "2026-11-30T09:30:00Z"},
		{"@every 1s", "2026-11-30T09:17:43Z", time.Second, "2026-11-30T09:17:43Z"},
		{"@every 1500ms", "2026-11-30T09:17:43Z", time.Second, "2026-11-30T09:17:43Z"}, // cron rounds to seconds
		// 02:00 in Berlin is 01:00 UTC in winter.
		{"CRON_TZ=Europe/Berlin 0 2 * * *", "2026-12-01T01:00:00Z", 24 * time.Hour, "2026-12-01T01:00:00Z"},
		{"  0 * * * *  ", "2026-11-30T10:00:00Z", time.Hour, "2026-11-30T10:00:00Z"},
	} {
		s, err := ParseSpec(tc.spec)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", tc.spec, err)
			continue
		}
		next := s.Next(from)
		if !next.Equal(utc(tc.next)) {
			t.Errorf("%q: Next(%v) = %v, want %s", tc.spec, from, next, tc.next)
		}
		if got := s.Interval(from); got != tc.interval {
			t.Errorf("%q: Interval = %v, want %v", tc.spec, got, tc.interval)
		}
		if got := s.Slot(next.Add(300 * time.Millisecond)); !got.Equal(utc(tc.slot)) {
			t.Errorf("%q: Slot = %v, want %s", tc.spec, got, tc.slot)
		}
		if got := s.Prev(next.Add(tc.interval / 2)); !got.Equal(next) {
			t.Errorf("%q: Prev(%v) = %v, want %v", tc.spec, next.Add(tc.interval/2), got, next)
		}
		if got := s.Prev(next); !got.Equal(next) {
			t.Errorf("%q: Prev(%v) = %v, want itself", tc.spec, next, got)
		}
	}
}

func TestPrevOfIrregularSchedules(t *testing.T) {
	monthly, _ := ParseSpec("0 0 1 * *")
	if got := monthly.Prev(utc("2026-03-31T12:00:00Z")); !got.Equal(utc("2026-03-01T00:00:00Z")) {
		t.Errorf("monthly Prev = %v", got)
	}
	weekdays, _ := ParseSpec("0 6 * * 1-5")
	if got := weekdays.Prev(utc("2026-11-30T05:00:00Z")); !got.Equal(utc("2026-11-27T06:00:00Z")) { // a Monday → Friday
		t.Errorf("weekdays Prev = %v", got)
	}
}

func TestParseSpecRefuses(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"", "empty"},
		{"0 * * *", "expected exactly 5 fields"},
		{"0 0 * * * *", "expected exactly 5 fields"},
		{"61 * * * *", "above maximum"},
		{"@fortnightly", "unrecognized descriptor"},
		{"@every banana", "failed to parse duration"},
		{"CRON_TZ=Mars/Olympus 0 * * * *", "provided bad location"},
		{"TZ=UTC 0 * * * *", "CRON_TZ="},
		{"0 0 30 2 *", "no run in the next five years"},
		{"0 0 31 4 *", "no run in the next five years"},
	} {
		_, err := ParseSpec(tc.spec)
		if err == nil {
			t.Errorf("ParseSpec(%q) accepted it", tc.spec)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) || !strings.Contains(msg, `"`+tc.spec+`"`) || strings.Contains(msg, "\n") {
			t.Errorf("ParseSpec(%q) = %q; want one line quoting the spec and %q", tc.spec, msg, tc.want)
		}
	}
}

// TestSlotSearchesAreBounded: on a schedule with no activation (robfig's
// Next is the zero time), and on one whose activations are years apart,
// Prev and Interval return, and never a time after t.
func TestSlotSearchesAreBounded(t *testing.T) {
	never, err := parser.Parse("CRON_TZ=UTC 0 0 30 2 *")
	if err != nil {
		t.Fatal(err)
	}
	leap, _ := ParseSpec("0 0 29 2 *")
	at := utc("2027-06-01T00:00:00Z")
	done := make(chan [3]time.Time, 1)
	go func() {
		s := Spec{Text: "0 0 30 2 *", sched: never}
		done <- [3]time.Time{s.Prev(at), time.Time{}.Add(s.Interval(at)), leap.Prev(at)}
	}()
	select {
	case got := <-done:
		if !got[0].IsZero() || !got[1].IsZero() {
			t.Errorf("never-firing spec: Prev = %v, Interval = %v; want zero, zero", got[0], got[1].Sub(time.Time{}))
		}
		if !got[2].Equal(utc("2024-02-29T00:00:00Z")) {
			t.Errorf("leap-day spec: Prev(%v) = %v, want 2024-02-29", at, got[2])
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Prev of a never-firing spec did not return: an unbounded search")
	}
}

func TestEverySlotsAgreeAcrossProcesses(t *testing.T) {
	// Two schedulers started at different times see the same activations.
	s, _ := ParseSpec("@every 10m")
	a, b := s.Next(utc("2026-11-30T09:01:13Z")), s.Next(utc("2026-11-30T09:07:59Z"))
	if !a.Equal(b) || !a.Equal(utc("2026-11-30T09:10:00Z")) {
		t.Errorf("activations %v and %v, want both 09:10", a, b)
	}
}
