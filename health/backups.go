package health

import (
	"context"
	"errors"
	"time"

	"github.com/etcdops/etcdops/backup"
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

// StoreSource finds snapshots by listing the names in an `etcdops backup`
// bucket; it never opens a snapshot.
type StoreSource struct {
	Store *backup.Store
}

var _ BackupSource = (*StoreSource)(nil)

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
