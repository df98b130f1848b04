package schedule

import (
	"fmt"
	"time"

	"github.com/etcdops/etcdops/pitr"
)

// CatchUp says what a job does at start about runs it missed while no
// scheduler ran.
type CatchUp string

const (
	// CatchUpOnce runs once at start, for the most recent due slot, when
	// the newest complete snapshot of the job's tag is older than it.
	CatchUpOnce CatchUp = "once"
	// CatchUpNone waits for the next activation.
	CatchUpNone CatchUp = "none"
)

// ParseCatchUp reads a catch-up mode; empty means once.
func ParseCatchUp(s string) (CatchUp, error) {
	switch CatchUp(s) {
	case "", CatchUpOnce:
		return CatchUpOnce, nil
	case CatchUpNone:
		return CatchUpNone, nil
	}
	return "", fmt.Errorf("invalid value %q, expected once or none", s)
}

// CatchUpSlot decides whether a job runs once at start, and for which
// slot. newest is the time of the newest complete snapshot of its tag in
// the bucket (zero when it has none, or when the bucket could not be
// listed). The job catches up only when the most recent due slot (the
// latest activation at or before now) is newer than newest, and then for
// that slot: a slot whose snapshot exists is done. Missed runs are judged
// from the bucket, not from local state, so the decision survives
// restarts and moves to new hosts; and it is one run, never one per
// missed slot.
func CatchUpSlot(mode CatchUp, spec Spec, newest, now time.Time) (slot time.Time, ok bool) {
	if mode == CatchUpNone {
		return time.Time{}, false
	}
	due := spec.Prev(now)
	if due.IsZero() || !due.After(newest) {
		return time.Time{}, false
	}
	return due, true
}

// Bounds of LogProblem.
const (
	// LogNotStreamingGrace is how long a job's log may go unstreamed (a
	// cluster or bucket that fails, retried every few seconds) before
	// /healthz says so.
	LogNotStreamingGrace = time.Minute
	// LogGapReported is how long /healthz reports a gap recorded in the log.
	LogGapReported = time.Hour
)

// LogProblem says what is wrong with a job's log for /healthz, from its
// state (started: when the schedule started), or "" when nothing is: a
// log that has not streamed for longer than LogNotStreamingGrace, or a gap
// recorded within LogGapReported (the points in it are lost).
func LogProblem(s pitr.LogState, started, now time.Time) string {
	if g := s.Gap; g != nil && now.Sub(g.Time) <= LogGapReported {
		return fmt.Sprintf("the change log recorded a gap %s ago: revisions %d-%d are not recoverable (%s)",
			now.Sub(g.Time).Round(time.Second), g.First, g.Last, g.Reason)
	}
	if s.Streaming {
		return ""
	}
	since := s.Since
	if since.IsZero() {
		since = started
	}
	if d := now.Sub(since); d > LogNotStreamingGrace {
		return fmt.Sprintf("the change log has not streamed for %s", d.Round(time.Second))
	}
	return ""
}

// Stale reports whether a job whose last success was at last (zero for
// never) is older than maxAge at now; a maxAge of 0 never is.
func Stale(last time.Time, maxAge time.Duration, now time.Time) bool {
	if maxAge <= 0 {
		return false
	}
	return last.IsZero() || now.Sub(last) > maxAge
}

// Jitter is the delay before a run for a random fraction r in [0, 1).
func Jitter(max time.Duration, r float64) time.Duration {
	if max <= 0 {
		return 0
	}
	return time.Duration(r * float64(max)).Truncate(time.Millisecond)
}
