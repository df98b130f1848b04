package pitr

import (
	"context"
	"slices"
	"testing"
)

// A snapshot older than the start of the log (taken before the streamer
// started, or before the job had --pitr) is followed by revisions the log
// never held: a hole before the log, not segments lost, which verify
// counts as no problem. A log whose first segments are lost starts after
// no snapshot: its holes stay problems.
func TestHoleBeforeTheLog(t *testing.T) {
	l := Listing{Bases: []Base{base(515), base(534), base(900)}, Log: []SegmentName{seg(535, 700), seg(701, 1000)}}
	rs, holes := Ranges(l)
	if len(rs) != 2 || rs[0].From != 515 || rs[0].To != 515 || rs[1].From != 534 || rs[1].To != 1000 ||
		!slices.Equal(holes, []Hole{{From: 516, To: 533, BeforeLog: true}}) {
		t.Errorf("ranges %+v, holes %+v", rs, holes)
	}
	res, err := Verify(context.Background(), "t", l, func(_ context.Context, n SegmentName) ([]Revision, error) {
		var revs []Revision
		for r := n.First; r <= n.Last; r++ {
			revs = append(revs, Revision{Rev: r, Received: at(r)})
		}
		return revs, nil
	}, 1)
	if err != nil || len(res.Problems) != 0 {
		t.Errorf("verify: %v, problems %v", err, res.Problems)
	}

	// 535-700 lost: the log that started after 534 lost its start.
	lost := Listing{Bases: l.Bases, Log: []SegmentName{seg(701, 1000)}}
	if _, holes := Ranges(lost); !slices.Equal(holes, []Hole{{From: 516, To: 533}, {From: 535, To: 899}}) {
		t.Errorf("without 535-700: holes %+v", holes)
	}
	// Logged from a snapshot on, its first segments lost: the log now
	// starts after no snapshot.
	lost = Listing{Bases: []Base{base(515), base(534)}, Log: []SegmentName{seg(601, 1000)}}
	if _, holes := Ranges(lost); !slices.Equal(holes, []Hole{{From: 516, To: 533}, {From: 535, To: 600}}) {
		t.Errorf("logged from 601, snapshots at 515 and 534: holes %+v", holes)
	}
}
