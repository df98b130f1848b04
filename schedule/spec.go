// Package schedule runs backups on cron schedules, forever and observably:
// jobs, their pure decisions (next run, catch-up, health) and the daemon.
package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// parser reads standard 5-field cron lines and descriptors (@hourly,
// @daily, @every 30m), with an optional CRON_TZ=Zone prefix.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Spec is a parsed schedule.
type Spec struct {
	// Text is the spec as written.
	Text  string
	sched cron.Schedule
}

// SpecError is a schedule that does not parse.
type SpecError struct {
	Spec string
	Err  error
}

func (e *SpecError) Error() string { return fmt.Sprintf("cron spec %q: %v", e.Spec, e.Err) }
func (e *SpecError) Unwrap() error { return e.Err }

// ParseSpec parses a 5-field cron line or a descriptor. It is evaluated in
// UTC unless it starts with "CRON_TZ=Zone ". A spec with no activation in
// the next five years (a date that does not exist, such as 30 February)
// is refused: robfig/cron's Next gives up there.
func ParseSpec(text string) (Spec, error) { return parseSpecAt(text, time.Now()) }

func parseSpecAt(text string, now time.Time) (Spec, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return Spec{}, &SpecError{Spec: text, Err: fmt.Errorf("empty; expected 5 fields such as \"0 * * * *\" or a descriptor such as @hourly or \"@every 30m\"")}
	}
	if strings.HasPrefix(s, "TZ=") {
		return Spec{}, &SpecError{Spec: text, Err: fmt.Errorf("write the zone as CRON_TZ=Zone")}
	}
	if !strings.HasPrefix(s, "CRON_TZ=") {
		s = "CRON_TZ=UTC " + s
	}
	sched, err := parser.Parse(s)
	if err != nil {
		return Spec{}, &SpecError{Spec: text, Err: err}
	}
	if e, ok := sched.(cron.ConstantDelaySchedule); ok {
		sched = every{e.Delay} // cron rounds it to whole seconds, at least 1s
	}
	if sched.Next(now).IsZero() {
		return Spec{}, &SpecError{Spec: text, Err: fmt.Errorf("no run in the next five years: expected a date that exists, such as \"0 0 28 2 *\" rather than \"0 0 30 2 *\"")}
	}
	return Spec{Text: text, sched: sched}, nil
}

// Next is the first activation after t; the zero time when there is none
// in the five years after t.
func (s Spec) Next(t time.Time) time.Time { return s.sched.Next(t) }

// Interval is the schedule's period as seen from t: the time between the
// next two activations after t; 0 when there are not two.
func (s Spec) Interval(t time.Time) time.Duration {
	next := s.sched.Next(t)
	if next.IsZero() {
		return 0
	}
	after := s.sched.Next(next)
	if after.IsZero() {
		return 0
	}
	return after.Sub(next)
}

// Slot is the scheduled time of a run that cron started at t (at or just
// after its activation): the activation it was started for.
func (s Spec) Slot(t time.Time) time.Time {
	if e, ok := s.sched.(every); ok {
		return t.Truncate(e.d)
	}
	// 5-field schedules activate at whole minutes.
	return t.Truncate(time.Minute)
}

// Bounds of Prev's search: how far back it looks for an activation (twice
// the five years of cron's own search), and how many activations it steps
// through from there to t.
const (
	prevLookBack = 2 * 5 * 366 * 24 * time.Hour
	prevMaxSteps = 1 << 20
)

// Prev is the latest activation at or before t: the slot a run started at
// t makes up for. It is the zero time when it cannot be found within
// prevLookBack and prevMaxSteps (a schedule that never fires).
func (s Spec) Prev(t time.Time) time.Time {
	if e, ok := s.sched.(every); ok {
		return t.Truncate(e.d)
	}
	back := 2*s.Interval(t) + time.Minute
	prev := s.sched.Next(t.Add(-back))
	for (prev.IsZero() || prev.After(t)) && back < prevLookBack {
		back = min(2*back, prevLookBack)
		prev = s.sched.Next(t.Add(-back))
	}
	if prev.IsZero() || prev.After(t) {
		return time.Time{}
	}
	for range prevMaxSteps {
		n := s.sched.Next(prev)
		if n.IsZero() || n.After(t) {
			return prev
		}
		prev = n
	}
	return time.Time{}
}

// every is "@every D" on a fixed grid: at multiples of D since Go's zero
// time (for D dividing a day: at multiples of D since midnight UTC), not
// D after the process started, so that every process, and every member
// of a cluster, agrees on the slots.
type every struct{ d time.Duration }

func (e every) Next(t time.Time) time.Time { return t.Truncate(e.d).Add(e.d) }
