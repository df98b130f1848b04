package pitr

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// TestFetch checks that Fetch yields every revision in order, reads at
// most ahead+1 segments at once, stops on a read's error, and that
// breaking the iteration ends the reads.
func TestFetch(t *testing.T) {
	var segs []SegmentName
	for i := range int64(20) {
		segs = append(segs, seg(10*i+1, 10*i+10))
	}
	var running, most atomic.Int64
	read := func(ctx context.Context, n SegmentName) ([]Revision, error) {
		now := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
		}
		var revs []Revision
		for r := n.First; r <= n.Last; r++ {
			revs = append(revs, Revision{Rev: r})
		}
		return revs, ctx.Err()
	}
	next := int64(1)
	for r, err := range Fetch(context.Background(), read, segs, 3) {
		if err != nil || r.Rev != next {
			t.Fatalf("got revision %d, %v; expected %d", r.Rev, err, next)
		}
		next++
	}
	if next != 201 || most.Load() > 3 {
		t.Fatalf("yielded through %d, %d reads at once; expected 200 and at most 3", next-1, most.Load())
	}

	boom := errors.New("segment gone")
	failing := func(ctx context.Context, n SegmentName) ([]Revision, error) {
		if n.First == 51 {
			return nil, boom
		}
		return read(ctx, n)
	}
	var last int64
	var got error
	for r, err := range Fetch(context.Background(), failing, segs, 4) {
		if err != nil {
			got = err
			break
		}
		last = r.Rev
	}
	if !errors.Is(got, boom) || last != 50 {
		t.Fatalf("got %v after revision %d; expected the read's error after 50", got, last)
	}

	for r := range Fetch(context.Background(), read, segs, 4) {
		if r.Rev == 15 {
			break
		}
	}
	if running.Load() != 0 {
		t.Fatalf("%d reads still running after the iteration ended", running.Load())
	}
}
