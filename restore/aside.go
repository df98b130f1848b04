package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/etcdops/etcdops/internal/atomicfile"
)

// asideStamp is the format of the UTC time of <path>.old-<time>.
const asideStamp = "20060102T150405Z"

// asidePath is where path is moved aside to: <path>.old-<stamp>, or
// <path>.old-<stamp>-N when that is taken.
func asidePath(path, stamp string) string {
	aside := path + ".old-" + stamp
	for i := 2; ; i++ {
		if _, err := os.Lstat(aside); errors.Is(err, os.ErrNotExist) {
			return aside
		}
		aside = fmt.Sprintf("%s.old-%s-%d", path, stamp, i)
	}
}

// MoveAside renames path to <path>.old-<UTC time of now>, as --move-aside
// does, and syncs its parent directory. It returns the new name, or "" when
// path does not exist.
func MoveAside(path string, now time.Time) (string, error) {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	aside := asidePath(path, now.UTC().Format(asideStamp))
	if err := os.Rename(path, aside); err != nil {
		return "", err
	}
	return aside, atomicfile.SyncDir(filepath.Dir(path))
}
