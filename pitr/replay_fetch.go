package pitr

import (
	"context"
	"iter"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// SegmentFunc reads the revisions of one segment, checked.
type SegmentFunc func(ctx context.Context, n SegmentName) ([]Revision, error)

// Ahead bounds Fetch's read-ahead: the segments being read or read and
// waiting to be yielded. Fetch keeps about Bytes of them, judged by the
// largest segment read so far (as the streamer sizes one: see
// eventBytes), and never fewer than Min (the count before any segment is
// read) nor more than Max segments. Many small segments so keep many
// reads in flight against an object store's latency, and large ones few.
type Ahead struct {
	Bytes    int64
	Min, Max int
}

// DefaultAhead is a restore's read-ahead: 64 MiB, 4 to 16 segments (at
// most 16 full 16 MiB segments in memory).
var DefaultAhead = Ahead{Bytes: 64 << 20, Min: 4, Max: 16}

// limit is how many segments to keep ahead when the largest read so far
// has size bytes (0: none read yet).
func (a Ahead) limit(size int64) int {
	lo, hi := max(a.Min, 1), max(a.Max, a.Min, 1)
	if size <= 0 {
		return lo
	}
	return int(min(max(a.Bytes/size, int64(lo)), int64(hi)))
}

// eventBytes is what an event counts for in a segment's size: its key and
// value and 48 bytes for the rest.
func eventBytes(ev *mvccpb.Event) int {
	return len(ev.Kv.Key) + len(ev.Kv.Value) + 48
}

func segmentBytes(revs []Revision) int64 {
	var n int64
	for _, r := range revs {
		for _, ev := range r.Events {
			n += int64(eventBytes(ev))
		}
	}
	return n
}

// Fetch yields the revisions of segs in order, for Replay. It reads
// segments in parallel ahead of the one being yielded, as many as ahead
// allows, so that fetching and decoding overlap the replay while memory
// stays bounded. Breaking the iteration cancels the reads still running
// and waits for them.
func Fetch(ctx context.Context, read SegmentFunc, segs []SegmentName, ahead Ahead) iter.Seq2[Revision, error] {
	type result struct {
		revs []Revision
		err  error
	}
	return func(yield func(Revision, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		results := make([]chan result, len(segs))
		for i := range results {
			results[i] = make(chan result, 1)
		}
		// held counts the segments started and not yet yielded; largest is
		// the largest segment read so far.
		var mu sync.Mutex
		room := sync.NewCond(&mu)
		held, largest := 0, int64(0)
		stop := context.AfterFunc(ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			room.Broadcast()
		})
		defer stop()
		wg.Go(func() {
			for i, n := range segs {
				mu.Lock()
				for held >= ahead.limit(largest) && ctx.Err() == nil {
					room.Wait()
				}
				held++
				mu.Unlock()
				if ctx.Err() != nil {
					return
				}
				wg.Go(func() {
					revs, err := read(ctx, n)
					mu.Lock()
					largest = max(largest, segmentBytes(revs))
					room.Broadcast()
					mu.Unlock()
					results[i] <- result{revs, err}
				})
			}
		})
		for i := range segs {
			var r result
			select {
			case r = <-results[i]:
			case <-ctx.Done():
				yield(Revision{}, ctx.Err())
				return
			}
			if r.err != nil {
				yield(Revision{}, r.err)
				return
			}
			for _, rev := range r.revs {
				if !yield(rev, nil) {
					return
				}
			}
			mu.Lock()
			held--
			room.Broadcast()
			mu.Unlock()
		}
	}
}
