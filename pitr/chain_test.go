package pitr

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

// at is when the test's streamer received revision r: r seconds after t0.
func at(r int64) time.Time { return t0.Add(time.Duration(r) * time.Second) }

func seg(first, last int64) SegmentName {
	return SegmentName{Tag: "t", First: first, Last: last, Ext: SegmentExt}
}

func gap(first, last int64) SegmentName {
	return SegmentName{Tag: "t", First: first, Last: last, Gap: true}
}

func base(rev int64) Base {
	return Base{Name: fmt.Sprintf("snap-%d", rev), Revision: rev, Time: at(rev)}
}

// listing: snapshots at 100, 400 and 1000 (and one of unknown revision);
// segments 101-700 with overlaps, a recorded gap 701-999, segments
// 1001-1200 with an overlap.
func listing() Listing {
	return Listing{
		Bases: []Base{base(1000), base(100), {Name: "unknown", Revision: -1, Time: at(50)}, base(400)},
		Log: []SegmentName{
			seg(101, 200), seg(201, 500), seg(150, 600), seg(601, 700), gap(701, 999),
			seg(1001, 1100), seg(1050, 1150), seg(1101, 1200),
		},
	}
}

func TestRanges(t *testing.T) {
	rs, holes := Ranges(listing())
	want := []Range{{From: 100, To: 700, FromTime: at(100)}, {From: 1000, To: 1200, FromTime: at(1000)}}
	if !slices.EqualFunc(rs, want, func(a, b Range) bool { return a.From == b.From && a.To == b.To && a.FromTime.Equal(b.FromTime) }) {
		t.Errorf("ranges %+v, expected %+v", rs, want)
	}
	if !slices.Equal(holes, []Hole{{From: 701, To: 999, Recorded: true}}) {
		t.Errorf("holes %+v", holes)
	}
	// Segments lost at the end of the log: a hole before those after it.
	l0 := listing()
	l0.Log = slices.DeleteFunc(l0.Log, func(n SegmentName) bool { return n.First == 1101 || n.First == 1050 })
	l0.Log = append(l0.Log, seg(1301, 1400))
	rs, holes = Ranges(l0)
	if len(rs) != 2 || rs[1].To != 1100 || !slices.Equal(holes, []Hole{{From: 701, To: 999, Recorded: true}, {From: 1101, To: 1300}}) {
		t.Errorf("without 1050-1150 and 1101-1200, with 1301-1400: ranges %+v, holes %+v", rs, holes)
	}
	_, err := Plan(l0, 1200)
	if !errors.Is(err, ErrInHole) || !strings.HasSuffix(err.Error(), "no snapshot reaches the log after it): the nearest recoverable revision is 1100") {
		t.Errorf("target past a gap that no snapshot follows: %v", err)
	}
	// Segments missing without a gap record: a hole all the same.
	l := listing()
	l.Log = slices.DeleteFunc(l.Log, func(n SegmentName) bool { return n.First == 201 || n.First == 150 })
	rs, holes = Ranges(l)
	if len(rs) != 3 || rs[0].To != 200 || rs[1].From != 400 || rs[1].To != 400 ||
		!slices.Equal(holes, []Hole{{From: 201, To: 399}, {From: 401, To: 999, Recorded: true}}) {
		t.Errorf("without 201-500 and 150-600: ranges %+v, holes %+v", rs, holes)
	}
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		target int64
		base   int64
		segs   []SegmentName
		err    error
		msg    string
	}{
		{target: 100, base: 100},
		{target: 101, base: 100, segs: []SegmentName{seg(101, 200)}},
		{target: 200, base: 100, segs: []SegmentName{seg(101, 200)}},
		{target: 399, base: 100, segs: []SegmentName{seg(101, 200), seg(150, 600)}},
		{target: 400, base: 400},
		{target: 450, base: 400, segs: []SegmentName{seg(150, 600)}},
		{target: 700, base: 400, segs: []SegmentName{seg(150, 600), seg(601, 700)}},
		{target: 1000, base: 1000},
		{target: 1120, base: 1000, segs: []SegmentName{seg(1001, 1100), seg(1101, 1200)}},
		{target: Latest, base: 1000, segs: []SegmentName{seg(1001, 1100), seg(1101, 1200)}},
		{target: 99, err: ErrOutOfRange, msg: "revision 99 is outside the recoverable range: revisions 100-700 (2026-12-05T10:01:40Z to ?), 1000-1200"},
		{target: 1201, err: ErrOutOfRange, msg: "revision 1201 is outside the recoverable range"},
		{target: 701, err: ErrInHole, msg: "revision 701 is inside a gap of the log (revisions 701-999 are missing): the nearest recoverable revisions are 700 and 1000"},
		{target: 999, err: ErrInHole, msg: "nearest recoverable revisions are 700 and 1000"},
	} {
		c, err := Plan(listing(), tc.target)
		if tc.err != nil {
			var re *RangeError
			if !errors.Is(err, tc.err) || !errors.As(err, &re) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("target %d: got %v, expected %v with %q", tc.target, err, tc.err, tc.msg)
			}
			continue
		}
		if err != nil {
			t.Errorf("target %d: %v", tc.target, err)
			continue
		}
		want := tc.target
		if want == Latest {
			want = 1200
		}
		if c.Base.Revision != tc.base || !slices.Equal(c.Segments, tc.segs) || c.Target != want {
			t.Errorf("target %d: snapshot %d, segments %v, target %d; expected %d, %v", tc.target, c.Base.Revision, c.Segments, c.Target, tc.base, tc.segs)
		}
	}
	if _, err := Plan(Listing{Log: listing().Log}, Latest); !errors.Is(err, ErrNoBase) {
		t.Errorf("no snapshots: got %v", err)
	}
	if _, err := Plan(Listing{Bases: []Base{{Name: "unknown", Revision: -1}}}, Latest); !errors.Is(err, ErrNoBase) {
		t.Errorf("a snapshot of unknown revision: got %v", err)
	}
}

func TestAtTime(t *testing.T) {
	l := listing()
	reads := 0
	read := func(n SegmentName) ([]Revision, error) {
		reads++
		var revs []Revision
		for r := n.First; r <= n.Last; r++ {
			revs = append(revs, Revision{Rev: r, Received: at(r), Events: []*mvccpb.Event{{}}})
		}
		return revs, nil
	}
	for _, tc := range []struct {
		t   time.Time
		rev int64
		err error
	}{
		{t: at(100), rev: 100},
		{t: at(100).Add(999 * time.Millisecond), rev: 100},
		{t: at(101), rev: 101},
		{t: at(350).Add(time.Millisecond), rev: 350},
		{t: at(600), rev: 600},
		{t: at(699), rev: 699},
		{t: at(1000), rev: 1000},
		{t: at(1101), rev: 1101},
		{t: at(1200), rev: 1200},
		{t: at(5000), rev: 1200},
		{t: at(99), err: ErrOutOfRange},
		{t: at(700), rev: 700},
		{t: at(700).Add(time.Millisecond), err: ErrInHole},
		{t: at(850), err: ErrInHole},
	} {
		reads = 0
		rev, err := AtTime(l, tc.t, read)
		switch {
		case tc.err != nil && !errors.Is(err, tc.err):
			t.Errorf("%s: got %d, %v, expected %v", tc.t, rev, err, tc.err)
		case tc.err == nil && (err != nil || rev != tc.rev):
			t.Errorf("%s: got %d, %v, expected %d", tc.t, rev, err, tc.rev)
		case reads > 3:
			t.Errorf("%s: %d segments read for 2 or 3 after the snapshot", tc.t, reads)
		}
	}
	// A catch-up snapshot (revision 30) that finished after the streamer's
	// own (40, where the log starts): a time after both is the log's.
	race := Listing{Bases: []Base{{Name: "catch-up", Revision: 30, Time: at(45)}, {Name: "own", Revision: 40, Time: at(40)}},
		Log: []SegmentName{seg(41, 60)}}
	if rev, err := AtTime(race, at(50), read); err != nil || rev != 50 {
		t.Errorf("a lower snapshot taken later: got %d, %v, expected 50", rev, err)
	}
	boom := errors.New("segment gone")
	if _, err := AtTime(l, at(500), func(SegmentName) ([]Revision, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("expected the read's error, got %v", err)
	}
}
