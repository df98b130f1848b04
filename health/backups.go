package health

import (
	"context"
	"errors"
	"time"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/pitr"
)

// BackupSource finds the snapshots that `etcdops backup` stored.
type BackupSource interface {
	// Newest returns the newest complete snapshot tagged tag, or of any
	// tag when tag is "". It returns ErrNoSnapshot when there is none, and
	// another error when the snapshots could not be listed.
	Newest(ctx context.Context, tag string) (Snapshot, error)
}

// ErrNoSnapshot is returned by a BackupSource that holds no snapshot.
var ErrNoSnapshot = errors.New("no snapshot found")

// Snapshot is what a snapshot's object name tells.
type Snapshot struct {
	// Name is the object name, relative to the bucket (and its prefix).
	Name string
	Tag  string
	// Time is when the snapshot was taken, in UTC.
	Time time.Time
}

// LogSource is a BackupSource that also finds a tag's point-in-time log.
type LogSource interface {
	// NewestLog returns the end of tag's log; false when it has none.
	NewestLog(ctx context.Context, tag string) (LogEnd, bool, error)
}

// LogEnd is the segment of a tag's log that reaches furthest.
type LogEnd struct {
	Segment string
	// Revision is its last revision; Written when it reached the bucket.
	Revision int64
	Written  time.Time
}

// StoreSource finds snapshots by listing the names in an `etcdops backup`
// bucket; it never opens a snapshot.
type StoreSource struct {
	Store *backup.Store
}

var (
	_ BackupSource = (*StoreSource)(nil)
	_ LogSource    = (*StoreSource)(nil)
)

// NewestLog implements LogSource, from the listing of the log alone.
func (s *StoreSource) NewestLog(ctx context.Context, tag string) (LogEnd, bool, error) {
	n, written, ok, err := pitr.NewestSegment(ctx, s.Store, tag)
	if err != nil || !ok {
		return LogEnd{}, false, err
	}
	return LogEnd{Segment: n.String(), Revision: n.Last, Written: written.UTC()}, true, nil
}

// Newest implements BackupSource.
func (s *StoreSource) Newest(ctx context.Context, tag string) (Snapshot, error) {
	snaps, err := s.Store.List(ctx, tag, false)
	if err != nil {
		return Snapshot{}, err
	}
	for i := len(snaps) - 1; i >= 0; i-- { // oldest first
		if snaps[i].Complete() {
			return Snapshot{Name: snaps[i].Key(), Tag: snaps[i].Name.Tag, Time: snaps[i].Name.Time}, nil
		}
	}
	return Snapshot{}, ErrNoSnapshot
}
