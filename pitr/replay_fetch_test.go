package pitr

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// TestFetch checks that Fetch yields every revision in order, reads at
// most the segments ahead allows at once, stops on a read's error, and that
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
	for r, err := range Fetch(context.Background(), read, segs, Ahead{Min: 3, Max: 3}) {
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
	for r, err := range Fetch(context.Background(), failing, segs, Ahead{Min: 4, Max: 4}) {
		if err != nil {
			got = err
			break
		}
		last = r.Rev
	}
	if !errors.Is(got, boom) || last != 50 {
		t.Fatalf("got %v after revision %d; expected the read's error after 50", got, last)
	}

	for r := range Fetch(context.Background(), read, segs, Ahead{Min: 4, Max: 4}) {
		if r.Rev == 15 {
			break
		}
	}
	if running.Load() != 0 {
		t.Fatalf("%d reads still running after the iteration ended", running.Load())
	}
}

// TestFetchAheadBySize: read-ahead starts at Min segments and, once the
// segments read are known to be small, grows to Max; large ones keep it at
// Min.
func TestFetchAheadBySize(t *testing.T) {
	var segs []SegmentName
	for i := range int64(40) {
		segs = append(segs, seg(i+1, i+1))
	}
	// Each segment is one revision of one event of 10+48 bytes.
	small := func(r int64) []Revision {
		return []Revision{{Rev: r, Events: []*mvccpb.Event{{Kv: &mvccpb.KeyValue{Key: []byte("0123456789"), ModRevision: r}}}}}
	}
	for _, tc := range []struct {
		name  string
		ahead Ahead
		want  int64 // reads at once, at most and at some point
	}{
		{"small segments", Ahead{Bytes: 58 * 6, Min: 2, Max: 6}, 6},
		{"more than Max would hold", Ahead{Bytes: 1 << 20, Min: 2, Max: 5}, 5},
		{"large segments", Ahead{Bytes: 57, Min: 2, Max: 6}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var running, most atomic.Int64
			read := func(ctx context.Context, n SegmentName) ([]Revision, error) {
				now := running.Add(1)
				defer running.Add(-1)
				for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
				}
				if n.First > 1 && n.First < 20 {
					// Hold the reads until as many run as ahead should allow.
					deadline := time.Now().Add(10 * time.Second)
					for most.Load() < tc.want {
						if time.Now().After(deadline) {
							return nil, fmt.Errorf("at most %d reads at once in 10s, want %d", most.Load(), tc.want)
						}
						time.Sleep(time.Millisecond)
					}
				}
				return small(n.First), ctx.Err()
			}
			next := int64(1)
			for r, err := range Fetch(context.Background(), read, segs, tc.ahead) {
				if err != nil || r.Rev != next {
					t.Fatalf("got revision %d, %v; expected %d", r.Rev, err, next)
				}
				next++
			}
			if most.Load() != tc.want {
				t.Fatalf("%d reads at once; want %d", most.Load(), tc.want)
			}
		})
	}
}
