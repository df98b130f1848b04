package pitr

import (
	"reflect"
	"testing"
)

func TestDecideLog(t *testing.T) {
	seg := func(first, last int64) SegmentName {
		return SegmentName{Tag: "t", First: first, Last: last, Ext: SegmentExt}
	}
	gap := func(first, last int64) SegmentName { return SegmentName{Tag: "t", First: first, Last: last, Gap: true} }
	log := []SegmentName{seg(11, 20), gap(21, 29), seg(30, 40), seg(35, 45), seg(41, 50), seg(51, 60)}
	for _, tc := range []struct {
		name string
		kept []int64
		want []SegmentName
	}{
		{"no kept snapshot: keep all", nil, nil},
		{"kept revisions unknown: keep all", []int64{0}, nil},
		{"oldest kept before the log", []int64{5, 55}, nil},
		{"oldest kept at a segment's last revision", []int64{60, 40}, []SegmentName{seg(11, 20), gap(21, 29), seg(30, 40)}},
		{"straddling segments stay", []int64{42}, []SegmentName{seg(11, 20), gap(21, 29), seg(30, 40)}},
		{"gap wholly before", []int64{29}, []SegmentName{seg(11, 20), gap(21, 29)}},
		{"oldest kept after the log", []int64{70}, log},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []SegmentName
			for _, d := range DecideLog(log, tc.kept) {
				if len(d.Reasons) == 0 || d.Removed {
					t.Errorf("%s: reasons %q, removed %v", d.Name, d.Reasons, d.Removed)
				}
				got = append(got, d.Name)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DecideLog(kept %v) removes %v, want %v", tc.kept, got, tc.want)
			}
		})
	}
}
