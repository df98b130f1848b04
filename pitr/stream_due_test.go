package pitr

import (
	"testing"
	"time"
)

// A change waits in the buffer no longer than Interval less the time the
// last upload took, so that it is in the bucket about Interval after it
// arrived; with nothing waiting, the hold is moved every Interval.
func TestFlushIsDueBeforeTheIntervalEnds(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name       string
		waited     time.Duration // by the oldest buffered revision; 0: none buffered
		upload     time.Duration
		sinceFlush time.Duration
		want       bool
	}{
		{name: "fresh change", waited: 100 * time.Millisecond, upload: 50 * time.Millisecond, want: false},
		{name: "change due by the interval", waited: time.Second, want: true},
		{name: "slow uploads start early", waited: 700 * time.Millisecond, upload: 300 * time.Millisecond, want: true},
		{name: "not before a quarter interval", waited: 200 * time.Millisecond, upload: 2 * time.Second, want: false},
		{name: "uploads slower than the interval", waited: 250 * time.Millisecond, upload: 2 * time.Second, want: true},
		{name: "nothing waiting, hold recently moved", sinceFlush: 500 * time.Millisecond, want: false},
		{name: "nothing waiting, interval passed", sinceFlush: time.Second, want: true},
	} {
		st := &streamState{Streamer: &Streamer{Interval: time.Second}, upload: tc.upload, lastFlush: now.Add(-tc.sinceFlush)}
		if tc.waited > 0 {
			st.buf = []Revision{{Rev: 2}}
			st.waiting = now.Add(-tc.waited)
		}
		if got := st.due(); got != tc.want {
			t.Errorf("%s: due = %v, want %v", tc.name, got, tc.want)
		}
	}
}
