package restore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/atomicfile"
	"github.com/etcdops/etcdops/pitr"
)

// PointInTime is a target in a tag's log: a revision (pitr.Latest: the end
// of the log) or, when Time is set, the last revision the log's streamer
// received at or before Time.
type PointInTime struct {
	Revision int64
	Time     time.Time
}

// PointInTimeResult is how OpenPointInTime reached its target.
type PointInTimeResult struct {
	// Chain is the snapshot and the segments replayed on it.
	Chain    *pitr.Chain        `json:"chain"`
	Segments []string           `json:"segments"`
	Replay   *pitr.ReplayResult `json:"replay,omitempty"`
	// Ranges are what the tag's log can reach.
	Ranges []pitr.Range `json:"recoverable"`
}

// OpenPointInTime restores a tag's state at a point of its log into a
// private database: it plans the chain (pitr.Plan, pitr.AtTime), fetches
// and checks the chain's snapshot as OpenSnapshot does, and replays the
// chain's segments onto it (pitr.Replay), fetching them in parallel ahead
// of the replay. The result is a checked Snapshot for Run, as a snapshot
// file at the target revision would be. A target the log cannot reach is a
// *pitr.RangeError (or pitr.ErrNoBase), found before anything is fetched.
func OpenPointInTime(ctx context.Context, src Source, to PointInTime) (*Snapshot, *PointInTimeResult, error) {
	switch {
	case !IsBucket(src.From):
		return nil, nil, configErr(FieldFrom, src.From, "expected a bucket URL for a point in time of its log")
	case src.Snapshot != "":
		return nil, nil, configErr(FieldSnapshot, src.Snapshot, "expected no snapshot name with a point in time: the log's chain chooses the snapshot")
	}
	if src.Tag == "" {
		return nil, nil, configErr(FieldTag, "", "expected the tag whose log to restore from (etcdops backup list shows the tags)")
	}
	lg := src.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	store, err := backup.OpenStore(ctx, src.From, src.Bucket...)
	if err != nil {
		return nil, nil, err
	}
	defer store.Close()
	l, err := pitr.List(ctx, store, src.Tag)
	if err != nil {
		return nil, nil, err
	}
	read := listedRead(pitr.Reader(store, src.Identities))
	res := &PointInTimeResult{}
	res.Ranges, _ = pitr.Ranges(l)
	target := to.Revision
	if !to.Time.IsZero() {
		if target, err = pitr.AtTime(l, to.Time, func(n pitr.SegmentName) ([]pitr.Revision, error) { return read(ctx, n) }); err != nil {
			return nil, nil, withRangeTimes(ctx, err, src.Tag, l, read)
		}
	}
	if res.Chain, err = pitr.Plan(l, target); err != nil {
		return nil, nil, withRangeTimes(ctx, err, src.Tag, l, read)
	}
	for _, n := range res.Chain.Segments {
		res.Segments = append(res.Segments, n.String())
	}
	lg.Info("point in time planned", zap.Int64("revision", res.Chain.Target), zap.String("snapshot", res.Chain.Base.Name),
		zap.Int("segments", len(res.Chain.Segments)))
	snap, err := store.Find(ctx, res.Chain.Base.Name, src.Tag)
	if errors.Is(err, backup.ErrNotFound) {
		return nil, nil, &GoneError{Object: "snapshot " + res.Chain.Base.Name, Err: err}
	}
	if err != nil {
		return nil, nil, err
	}
	base, err := fetch(ctx, store, snap, store.URL+"/"+snap.Key(), src)
	if err != nil {
		return nil, nil, err
	}
	s, err := replayOnto(ctx, base, res, read, lg)
	if err != nil {
		base.Close()
		return nil, nil, err
	}
	return s, res, nil
}

// GoneError is an object that a point-in-time restore listed and planned
// with and that was gone when it came to read it: a prune removed it
// meanwhile. The restore uses what it listed and stops; nothing is
// restored, and a rerun plans from what the bucket holds then.
type GoneError struct {
	// Object says which: "snapshot NAME" or "log segment NAME".
	Object string
	Err    error
}

func (e *GoneError) Error() string {
	return fmt.Sprintf("%s was listed when the restore was planned and is gone now (removed by a prune since?): nothing was restored; run it again to plan from what the bucket holds: %v", e.Object, e.Err)
}

func (e *GoneError) Unwrap() error { return e.Err }

// listedRead is read with a segment that is gone told as a *GoneError.
func listedRead(read pitr.SegmentFunc) pitr.SegmentFunc {
	return func(ctx context.Context, n pitr.SegmentName) ([]pitr.Revision, error) {
		revs, err := read(ctx, n)
		if errors.Is(err, backup.ErrNoObject) {
			return nil, &GoneError{Object: "log segment " + n.String(), Err: err}
		}
		return revs, err
	}
}

// replayOnto checks the fetched snapshot base, replays the chain onto its
// database in place and returns the result, checked, as a Snapshot that
// owns base's spool.
func replayOnto(ctx context.Context, base *Snapshot, res *PointInTimeResult, read pitr.SegmentFunc, lg *zap.Logger) (*Snapshot, error) {
	if err := base.check(ctx, lg); err != nil {
		return nil, err
	}
	if err := base.Inspect(); err != nil {
		return nil, err
	}
	if base.Revision != res.Chain.Base.Revision {
		return nil, fmt.Errorf("snapshot %s: database at revision %d, its manifest says %d", base.Source, base.Revision, res.Chain.Base.Revision)
	}
	// etcd's trailer goes: the database is replayed in place.
	if err := os.Truncate(base.path, base.Size); err != nil {
		return nil, err
	}
	rr, err := pitr.Replay(ctx, base.path, pitr.Fetch(ctx, read, res.Chain.Segments, pitr.DefaultAhead), res.Chain.Target, pitr.ReplayOptions{Logger: lg})
	if ge, ok := errors.AsType[*GoneError](err); ok {
		return nil, ge // says it all; the spool's path would only hide it
	}
	if err != nil {
		return nil, err
	}
	res.Replay = rr
	s := &Snapshot{
		Source:   fmt.Sprintf("%s + %d log segments to revision %d", base.Source, len(res.Chain.Segments), res.Chain.Target),
		Encoding: base.Encoding,
		Checks:   append(base.Checks, "log segments' checksums and names", "every replayed revision against the log"),
		path:     base.path, spool: base.spool,
	}
	base.spool = ""
	if err := s.check(ctx, lg); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// WriteFile writes the snapshot's database to path as a plain etcd
// snapshot, as `etcdctl snapshot save` writes one (the database, then etcd's
// sha256 trailer, which `etcdutl snapshot restore` checks): atomically,
// mode 0600. An existing path is refused unless force.
func (s *Snapshot) WriteFile(path string, force bool) error {
	if _, err := os.Lstat(path); err == nil && !force {
		return &backup.InputError{Field: backup.FieldDestination, Value: path, Err: backup.ErrExists}
	}
	in, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := atomicfile.Create(path, 0o600)
	if err != nil {
		return err
	}
	defer out.Abort()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(in, s.Size)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := out.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return out.Commit()
}

// withRangeTimes completes the recoverable ranges of a *pitr.RangeError
// with the time each ends at, as backup list shows them, so that the
// error says what can be restored in both revisions and times.
func withRangeTimes(ctx context.Context, err error, tag string, l pitr.Listing, read pitr.SegmentFunc) error {
	if re, ok := errors.AsType[*pitr.RangeError](err); ok {
		re.Ranges = pitr.Recoverable(ctx, tag, l, read).Ranges
	}
	return err
}
