package pitr

import (
	"context"
	"iter"
	"sync"
)

// SegmentFunc reads the revisions of one segment, checked.
type SegmentFunc func(ctx context.Context, n SegmentName) ([]Revision, error)

// Fetch yields the revisions of segs in order, for Replay. It reads up to
// ahead segments (at least 1) in parallel ahead of the one being yielded,
// so fetching and decoding overlap the replay while memory stays bounded
// by ahead+1 decoded segments. Breaking the iteration cancels the reads
// still running and waits for them.
func Fetch(ctx context.Context, read SegmentFunc, segs []SegmentName, ahead int) iter.Seq2[Revision, error] {
	ahead = max(ahead, 1)
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
		slots := make(chan struct{}, ahead)
		wg.Go(func() {
			for i, n := range segs {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				wg.Go(func() {
					revs, err := read(ctx, n)
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
			<-slots
		}
	}
}
