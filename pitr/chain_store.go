package pitr

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"filippo.io/age"
	"golang.org/x/sync/errgroup"

	"github.com/etcdops/etcdops/backup"
)

// List reads what store holds of tag, for Plan, Ranges and AtTime: its
// complete snapshots whose manifests give their revisions, and its log.
func List(ctx context.Context, store *backup.Store, tag string) (Listing, error) {
	snaps, err := store.List(ctx, tag, true)
	if err != nil {
		return Listing{}, err
	}
	log, err := ListLog(ctx, store, tag)
	if err != nil {
		return Listing{}, err
	}
	l := Listing{Log: log}
	for _, s := range snaps {
		if m := s.Manifest; m != nil && m.Revision >= 0 {
			// A catch-up snapshot is named after its slot, before it was taken.
			at := s.Name.Time
			if !m.Taken.IsZero() {
				at = m.Taken
			}
			l.Bases = append(l.Bases, Base{Name: s.Key(), Revision: BaseRevision(m.Revision), Time: at})
		}
	}
	return l, nil
}

// Reader returns a SegmentFunc reading tag's segments from store.
func Reader(store *backup.Store, identities []age.Identity) SegmentFunc {
	return func(ctx context.Context, n SegmentName) ([]Revision, error) {
		return ReadSegment(ctx, store, n, identities)
	}
}

// Recovery is what a tag's log can restore to: its ranges in order, and
// the holes between them.
type Recovery struct {
	Tag    string  `json:"tag"`
	Ranges []Range `json:"ranges"`
	Holes  []Hole  `json:"gaps,omitempty"`
	// Segments counts the log's segments.
	Segments int `json:"segments"`
}

// Recoverable returns what l can restore to, with each range's last time
// read from the segment that ends it (left unknown when read fails, as for
// an encrypted segment without identities).
func Recoverable(ctx context.Context, tag string, l Listing, read SegmentFunc) Recovery {
	rs, holes := Ranges(l)
	segs := l.segments()
	for i, r := range rs {
		if t, ok := receivedAt(ctx, segs, r, read); ok {
			rs[i].ToTime = &t
		}
	}
	return Recovery{Tag: tag, Ranges: rs, Holes: holes, Segments: len(segs)}
}

// receivedAt returns when the log received the last revision of r.
func receivedAt(ctx context.Context, segs []SegmentName, r Range, read SegmentFunc) (time.Time, bool) {
	if r.To == r.From {
		return r.FromTime, true
	}
	for _, n := range segs {
		if n.First <= r.To && r.To <= n.Last {
			revs, err := read(ctx, n)
			if err != nil {
				return time.Time{}, false
			}
			for _, x := range revs {
				if x.Rev == r.To {
					return x.Received, true
				}
			}
		}
	}
	return time.Time{}, false
}

// VerifyResult is what Verify found of a tag's log.
type VerifyResult struct {
	Recovery
	// Revisions counts the revisions read, across segments.
	Revisions int64 `json:"revisions"`
	// Problems are what is wrong: a segment that does not decode or lacks
	// revisions, and a hole no gap records (segments lost).
	Problems []string `json:"problems,omitempty"`
}

// Verify reads every segment of l (ahead at a time) and checks it: its
// checksum, that it holds every revision its name says and nothing else,
// and that the log from each snapshot is contiguous up to the next range,
// where a gap object must say why it stopped.
func Verify(ctx context.Context, tag string, l Listing, read SegmentFunc, ahead int) (*VerifyResult, error) {
	res := &VerifyResult{Recovery: Recoverable(ctx, tag, l, read)}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(ahead, 1))
	for _, n := range l.segments() {
		g.Go(func() error {
			revs, err := read(gctx, n)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case gctx.Err() != nil:
				return gctx.Err()
			case err != nil:
				res.Problems = append(res.Problems, err.Error())
			case int64(len(revs)) != n.Last-n.First+1:
				res.Problems = append(res.Problems, fmt.Sprintf("segment %s: %d revisions, its name says %d", n, len(revs), n.Last-n.First+1))
			}
			res.Revisions += int64(len(revs))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	slices.Sort(res.Problems)
	for _, h := range res.Holes {
		if !h.Recorded && !h.BeforeLog {
			res.Problems = append(res.Problems, fmt.Sprintf("revisions %d-%d: no segment holds them and no gap records why (segments lost)", h.From, h.To))
		}
	}
	return res, nil
}
