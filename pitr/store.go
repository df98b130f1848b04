package pitr

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"filippo.io/age"

	"github.com/etcdops/etcdops/backup"
)

// GapRecord is the content of a gap object: revisions First..Last are not
// in the log, because the streamer could not resume at First (Reason:
// etcd had compacted it). The log goes on from Snapshot, a full snapshot
// taken at once, whose revision is at least Last.
type GapRecord struct {
	Tag      string    `json:"tag"`
	First    int64     `json:"first_revision"`
	Last     int64     `json:"last_revision"`
	Time     time.Time `json:"time"`
	Reason   string    `json:"reason"`
	Snapshot string    `json:"snapshot,omitempty"`
}

// Name is the gap object's name.
func (g GapRecord) Name() SegmentName {
	return SegmentName{Tag: g.Tag, First: g.First, Last: g.Last, Gap: true}
}

// WriteSegment encodes revs with codec and stores them as one segment of
// tag, complete or not at all. A segment of the same name written by
// another streamer counts as written (taken true): it holds the same
// revisions.
func WriteSegment(ctx context.Context, store *backup.Store, tag string, codec backup.Codec, revs []Revision) (n SegmentName, size int64, taken bool, err error) {
	if len(revs) == 0 {
		return SegmentName{}, 0, false, errors.New("write segment: no revisions")
	}
	n = SegmentName{Tag: tag, First: revs[0].Rev, Last: revs[len(revs)-1].Rev, Ext: SegmentExtension(codec)}
	err = store.WriteObject(ctx, n.String(), func(w io.Writer) error {
		cw := &countWriter{w: w}
		enc, err := codec.Encoder(cw)
		if err != nil {
			return err
		}
		if err := EncodeSegment(enc, revs); err != nil {
			enc.Close()
			return err
		}
		if err := enc.Close(); err != nil {
			return err
		}
		size = cw.n
		return nil
	})
	if errors.Is(err, backup.ErrNameTaken) {
		return n, 0, true, nil
	}
	return n, size, false, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadSegment reads and checks the whole segment n: its checksum, and that
// it holds the revisions its name says.
func ReadSegment(ctx context.Context, store *backup.Store, n SegmentName, identities []age.Identity) ([]Revision, error) {
	r, err := store.OpenObject(ctx, n.String())
	if err != nil {
		return nil, err
	}
	defer r.Close()
	dec, err := backup.Decoder(r, n.Ext, identities)
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", n, err)
	}
	defer dec.Close()
	revs, err := DecodeSegment(dec)
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", n, err)
	}
	if err := n.Check(revs); err != nil {
		return nil, err
	}
	return revs, nil
}

// WriteGap records a gap in tag's log; a gap already recorded counts as
// written.
func WriteGap(ctx context.Context, store *backup.Store, g GapRecord) error {
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return err
	}
	err = store.WriteObject(ctx, g.Name().String(), func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	if errors.Is(err, backup.ErrNameTaken) {
		return nil
	}
	return err
}

// ReadGap reads the gap object n.
func ReadGap(ctx context.Context, store *backup.Store, n SegmentName) (GapRecord, error) {
	r, err := store.OpenObject(ctx, n.String())
	if err != nil {
		return GapRecord{}, err
	}
	defer r.Close()
	var g GapRecord
	if err := json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(&g); err != nil {
		return GapRecord{}, fmt.Errorf("gap %s: %w", n, err)
	}
	if g.Name() != n {
		return GapRecord{}, fmt.Errorf("gap %s: it records %s", n, g.Name())
	}
	return g, nil
}

// NewestSegment returns the segment of tag's log that reaches furthest,
// and when it was written to the bucket (its object's modification
// time), from the listing alone; false when the tag has no segment.
func NewestSegment(ctx context.Context, store *backup.Store, tag string) (SegmentName, time.Time, bool, error) {
	objs, err := store.ListObjects(ctx, LogPrefix(tag))
	if err != nil {
		return SegmentName{}, time.Time{}, false, err
	}
	var newest SegmentName
	var written time.Time
	found := false
	for _, o := range objs {
		n, ok := ParseSegmentName(o.Key)
		if !ok || n.Tag != tag || n.Gap {
			continue
		}
		if !found || n.Last > newest.Last || (n.Last == newest.Last && o.ModTime.After(written)) {
			newest, written, found = n, o.ModTime, true
		}
	}
	return newest, written, found, nil
}

// ListLog returns the names of tag's log objects (segments and gaps),
// ordered by first revision, then last; objects that are neither are
// left out.
func ListLog(ctx context.Context, store *backup.Store, tag string) ([]SegmentName, error) {
	objs, err := store.ListObjects(ctx, LogPrefix(tag))
	if err != nil {
		return nil, err
	}
	var out []SegmentName
	for _, o := range objs {
		if n, ok := ParseSegmentName(o.Key); ok && n.Tag == tag {
			out = append(out, n)
		}
	}
	slices.SortStableFunc(out, func(a, b SegmentName) int {
		if a.First != b.First {
			return cmp.Compare(a.First, b.First)
		}
		return cmp.Compare(a.Last, b.Last)
	})
	return out, nil
}
