package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"time"

	"gocloud.dev/blob"
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

// manifestSuffix names a snapshot's manifest: <snapshot name>.json. It is
// written last, so a snapshot without one is incomplete.
const manifestSuffix = ".json"

// snapshotTimeLayout is the UTC time in a snapshot's name.
const snapshotTimeLayout = "2006-01-02_15-04-05"

// snapshotName matches <tag>_<YYYY-MM-DD_HH-MM-SS><ext>, ext being .db,
// .db.zst, .db.age or .db.zst.age. The last "_date_time" ends the tag.
var snapshotName = regexp.MustCompile(`^(.+)_(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})\.db(?:\.zst)?(?:\.age)?$`)

// ParseSnapshotName returns the tag and time in a snapshot's object name,
// such as etcd-1_2026-11-21_04-00-00.db.zst; a folder before the name is
// allowed. It reports false for names that are not snapshots (manifests,
// partial uploads, foreign objects).
func ParseSnapshotName(name string) (tag string, t time.Time, ok bool) {
	m := snapshotName.FindStringSubmatch(path.Base(name))
	if m == nil {
		return "", time.Time{}, false
	}
	t, err := time.ParseInLocation(snapshotTimeLayout, m[2], time.UTC)
	if err != nil {
		return "", time.Time{}, false
	}
	return m[1], t, true
}

// BucketSource finds snapshots by listing a bucket's object names; it never
// opens an object.
type BucketSource struct {
	Bucket *blob.Bucket
}

var _ BackupSource = (*BucketSource)(nil)

// Newest implements BackupSource.
func (s *BucketSource) Newest(ctx context.Context, tag string) (Snapshot, error) {
	manifests := map[string]bool{}
	var snaps []Snapshot
	it := s.Bucket.List(nil)
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return Snapshot{}, fmt.Errorf("list: %w", err)
		}
		if snap, ok := strings.CutSuffix(obj.Key, manifestSuffix); ok {
			manifests[snap] = true
			continue
		}
		snapTag, t, ok := ParseSnapshotName(obj.Key)
		if ok && (tag == "" || snapTag == tag) {
			snaps = append(snaps, Snapshot{Name: obj.Key, Tag: snapTag, Time: t})
		}
	}
	var newest Snapshot
	for _, snap := range snaps {
		if manifests[snap.Name] && snap.Time.After(newest.Time) {
			newest = snap
		}
	}
	if newest.Name == "" {
		return Snapshot{}, ErrNoSnapshot
	}
	return newest, nil
}
