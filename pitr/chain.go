package pitr

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Base is a snapshot that a chain can start from: a complete snapshot of
// the tag whose manifest gives its revision.
type Base struct {
	// Name is the snapshot's object name.
	Name     string    `json:"name"`
	Revision int64     `json:"revision"`
	Time     time.Time `json:"time"`
}

// BaseRevision is the revision a log goes on from after a snapshot whose
// manifest says rev: a database no write ever reached reads as revision 0
// (as etcdutl says), but etcd counts from 1, and its first write is 2.
func BaseRevision(rev int64) int64 {
	if rev == 0 {
		return 1
	}
	return rev
}

// Listing is what a bucket holds of one tag: its snapshots and the names
// of its log objects (segments and gaps).
type Listing struct {
	Bases []Base
	Log   []SegmentName
}

// Range is a stretch of revisions that a restore can reach: From is the
// revision of its earliest snapshot, To the last revision the log holds
// contiguously from there.
type Range struct {
	From int64 `json:"first_revision"`
	To   int64 `json:"last_revision"`
	// FromTime is the earliest snapshot's time; ToTime, when known, the
	// time the streamer received revision To.
	FromTime time.Time  `json:"first_time"`
	ToTime   *time.Time `json:"last_time,omitempty"`
}

// Hole is a stretch of revisions between two ranges that no segment holds.
type Hole struct {
	From int64 `json:"first_revision"`
	To   int64 `json:"last_revision"`
	// Recorded says a gap object records it (the streamer could not
	// resume); else segments are missing without a record.
	Recorded bool `json:"recorded"`
	// BeforeLog says the hole ends at the snapshot the log starts from:
	// revisions after an older snapshot (taken while the streamer started,
	// or before the tag had a log) that no streamer was there to log, not
	// segments lost.
	BeforeLog bool `json:"before_log,omitempty"`
}

// Chain is a restore's plan: the snapshot to start from and the segments
// to replay on it, in order, through Target.
type Chain struct {
	Base     Base          `json:"snapshot"`
	Segments []SegmentName `json:"-"`
	Target   int64         `json:"target_revision"`
}

// Errors of planning, to tell by errors.Is.
var (
	// ErrNoBase: the tag has no complete snapshot with a known revision.
	ErrNoBase = errors.New("no snapshot to start from")
	// ErrOutOfRange: the target is before the earliest snapshot or after
	// the end of the log.
	ErrOutOfRange = errors.New("target outside the recoverable range")
	// ErrInHole: the target falls where the log has no revisions.
	ErrInHole = errors.New("target inside a gap of the log")
)

// RangeError says why a target cannot be reached and what can be.
type RangeError struct {
	// Target is the revision asked for, or 0 for a time target (Time).
	Target int64
	Time   time.Time
	Ranges []Range
	// Hole is the gap holding the target (with ErrInHole): the nearest
	// recoverable revisions are Hole.From-1 and Hole.To+1.
	Hole *Hole
}

func (e *RangeError) Error() string {
	what := fmt.Sprintf("revision %d", e.Target)
	if e.Target == 0 {
		what = e.Time.UTC().Format(time.RFC3339Nano)
	}
	if h := e.Hole; h != nil {
		if !slices.ContainsFunc(e.Ranges, func(r Range) bool { return r.From == h.To+1 }) {
			return fmt.Sprintf("%s is inside a gap of the log (revisions %d-%d are missing, and no snapshot reaches the log after it): the nearest recoverable revision is %d",
				what, h.From, h.To, h.From-1)
		}
		return fmt.Sprintf("%s is inside a gap of the log (revisions %d-%d are missing): the nearest recoverable revisions are %d and %d",
			what, h.From, h.To, h.From-1, h.To+1)
	}
	return fmt.Sprintf("%s is outside the recoverable range: %s", what, FormatRanges(e.Ranges))
}

func (e *RangeError) Unwrap() error {
	if e.Hole != nil {
		return ErrInHole
	}
	return ErrOutOfRange
}

// FormatRanges writes ranges as "revisions 100-900 (2026-12-05T10:00:00Z
// to …), 1000-2000 (…)".
func FormatRanges(rs []Range) string {
	if len(rs) == 0 {
		return "none"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		to := "?"
		if r.ToTime != nil {
			to = r.ToTime.UTC().Format(time.RFC3339)
		}
		parts[i] = fmt.Sprintf("%d-%d (%s to %s)", r.From, r.To, r.FromTime.UTC().Format(time.RFC3339), to)
	}
	return "revisions " + strings.Join(parts, ", ")
}

// segments returns the listing's segments (not gaps) ordered by first
// revision, then last.
func (l Listing) segments() []SegmentName {
	var segs []SegmentName
	for _, n := range l.Log {
		if !n.Gap {
			segs = append(segs, n)
		}
	}
	slices.SortFunc(segs, func(a, b SegmentName) int {
		return cmp.Or(cmp.Compare(a.First, b.First), cmp.Compare(a.Last, b.Last))
	})
	return segs
}

// bases returns the listing's bases ordered by revision, then time.
func (l Listing) bases() []Base {
	bs := slices.Clone(l.Bases)
	slices.SortFunc(bs, func(a, b Base) int {
		return cmp.Or(cmp.Compare(a.Revision, b.Revision), a.Time.Compare(b.Time))
	})
	return bs
}

// cover picks, from segments ordered by first revision, the fewest in
// order that hold every revision after from through to (to 0: as far as
// they reach contiguously). It returns them and the last revision
// reached.
func cover(segs []SegmentName, from, to int64) ([]SegmentName, int64) {
	var picked []SegmentName
	reached, i := from, 0
	for to == 0 || reached < to {
		best := -1
		for ; i < len(segs) && segs[i].First <= reached+1; i++ {
			if segs[i].Last > reached && (best < 0 || segs[i].Last > segs[best].Last) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		picked = append(picked, segs[best])
		reached = segs[best].Last
	}
	return picked, reached
}

// Ranges returns the recoverable ranges of a listing, in order, and the
// holes between them and after the last one (before segments that no
// snapshot reaches).
func Ranges(l Listing) (rs []Range, holes []Hole) {
	segs := l.segments()
	for _, b := range l.bases() {
		if b.Revision <= 0 {
			continue
		}
		_, end := cover(segs, b.Revision, 0)
		if n := len(rs); n > 0 && b.Revision <= rs[n-1].To+1 {
			rs[n-1].To = max(rs[n-1].To, end)
			continue
		}
		rs = append(rs, Range{From: b.Revision, To: end, FromTime: b.Time})
	}
	// A hole ends where the next range starts or, after the last range,
	// where segments that no snapshot reaches start.
	ends := make([]int64, 0, len(rs))
	for _, r := range rs[min(1, len(rs)):] {
		ends = append(ends, r.From)
	}
	if n := len(rs); n > 0 {
		tail := int64(math.MaxInt64)
		for _, sg := range segs {
			if sg.First > rs[n-1].To+1 {
				tail = min(tail, sg.First)
			}
		}
		if tail != math.MaxInt64 {
			ends = append(ends, tail)
		}
	}
	logStart := int64(math.MaxInt64)
	for _, n := range l.Log {
		logStart = min(logStart, n.First)
	}
	for i, end := range ends {
		h := Hole{From: rs[i].To + 1, To: end - 1}
		for _, n := range l.Log {
			if n.Gap && n.First <= h.To && n.Last >= h.From {
				h.Recorded = true
			}
		}
		// The log's first revision follows the snapshot that ends the hole.
		h.BeforeLog = !h.Recorded && i+1 < len(rs) && logStart == rs[i+1].From+1
		holes = append(holes, h)
	}
	return rs, holes
}

// Plan chooses the snapshot and the segments that reach revision target
// (Latest: the end of the log): the newest snapshot at or before target,
// and the fewest segments that hold every revision after it through
// target. A target that cannot be reached is a *RangeError.
func Plan(l Listing, target int64) (*Chain, error) {
	rs, holes := Ranges(l)
	if len(rs) == 0 {
		return nil, ErrNoBase
	}
	if target == Latest {
		target = rs[len(rs)-1].To
	}
	if err := reachable(rs, holes, target); err != nil {
		err.Target = target
		return nil, err
	}
	var base Base
	for _, b := range l.bases() {
		if b.Revision > 0 && b.Revision <= target {
			base = b
		}
	}
	segs, reached := cover(l.segments(), base.Revision, target)
	if reached < target {
		// Ranges said target is reachable from an earlier snapshot, which
		// implies it is from this one too.
		return nil, fmt.Errorf("plan revision %d from %s: the log reaches %d only", target, base.Name, reached)
	}
	return &Chain{Base: base, Segments: segs, Target: target}, nil
}

// reachable returns nil when target lies in one of the ranges.
func reachable(rs []Range, holes []Hole, target int64) *RangeError {
	for _, r := range rs {
		if r.From <= target && target <= r.To {
			return nil
		}
	}
	for _, h := range holes {
		if h.From <= target && target <= h.To {
			return &RangeError{Ranges: rs, Hole: &h}
		}
	}
	return &RangeError{Ranges: rs}
}

// ReadFunc reads the revisions of one segment.
type ReadFunc func(SegmentName) ([]Revision, error)

// AtTime returns the last revision received at or before t: from the
// newest snapshot taken at or before t, through the log that follows it.
// It reads a few segments with read, halving the search each time (log2
// of the segments after that snapshot, plus one). A time before the
// earliest snapshot is a *RangeError; so is a time after the end of a range
// that a gap follows, before the next snapshot (the log does not know what
// happened then). A time after the end of the log gives its last revision.
func AtTime(l Listing, t time.Time, read ReadFunc) (int64, error) {
	rs, holes := Ranges(l)
	if len(rs) == 0 {
		return 0, ErrNoBase
	}
	var base *Base
	for _, b := range l.bases() {
		// Of the snapshots taken by t, the highest revision is the newest
		// state (a catch-up snapshot may finish after a later revision's).
		if b.Revision > 0 && !b.Time.After(t) && (base == nil || b.Revision > base.Revision || b.Revision == base.Revision && !b.Time.Before(base.Time)) {
			base = &b
		}
	}
	if base == nil {
		return 0, &RangeError{Time: t, Ranges: rs}
	}
	var r Range
	for _, x := range rs {
		if x.From <= base.Revision && base.Revision <= x.To {
			r = x
		}
	}
	segs, _ := cover(l.segments(), base.Revision, r.To)
	cache := map[int][]Revision{}
	var readErr error
	revs := func(i int) []Revision {
		if readErr != nil {
			return nil
		}
		if _, ok := cache[i]; !ok {
			rv, err := read(segs[i])
			if err == nil && len(rv) == 0 {
				err = fmt.Errorf("segment %s: no revisions", segs[i])
			}
			if err != nil {
				readErr = err
				return nil
			}
			cache[i] = rv
		}
		return cache[i]
	}
	// k is the first segment whose first revision came after t.
	lo, hi := 0, len(segs)
	for lo < hi {
		mid := (lo + hi) / 2
		rv := revs(mid)
		if readErr != nil {
			return 0, readErr
		}
		if rv[0].Received.After(t) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	k := lo
	rev, received := base.Revision, base.Time
	if k > 0 {
		rv := revs(k - 1)
		if readErr != nil {
			return 0, readErr
		}
		for _, x := range rv {
			if x.Received.After(t) {
				break
			}
			if x.Rev > rev {
				rev, received = x.Rev, x.Received
			}
		}
	}
	if rev == r.To && t.After(received) {
		for _, h := range holes {
			if h.From == r.To+1 {
				return 0, &RangeError{Time: t, Ranges: rs, Hole: &h}
			}
		}
	}
	return rev, nil
}
