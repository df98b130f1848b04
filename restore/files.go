package restore

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/etcdops/etcdops/internal/atomicfile"
)

// How a member's database was written.
const (
	// DBRestored: etcd's own restore copied the snapshot.
	DBRestored = "restored"
	// DBReflink: a reflink of the first member's database (FICLONE), which
	// shares its blocks until either changes.
	DBReflink = "reflink"
	// DBCopy: a byte copy of the first member's database, where the
	// filesystem cannot share blocks.
	DBCopy = "copy"
)

// cloneFile replaces dst with a copy of src: a reflink where the filesystem
// supports one (XFS, btrfs), else a byte copy (copy_file_range), written
// atomically (atomicfile). It returns DBReflink or DBCopy.
func cloneFile(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := atomicfile.Create(dst, 0o600)
	if err != nil {
		return "", err
	}
	defer out.Abort()
	kind := DBReflink
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) != nil {
		kind = DBCopy
		if _, err := io.Copy(out, in); err != nil {
			return "", err
		}
	}
	return kind, out.Commit()
}

// sameStart compares the sizes and the first n bytes of two files: for a
// bolt database, its two meta pages, which name the root, the transaction
// and their own checksum.
func sameStart(a, b string, n int) error {
	read := func(path string) ([]byte, int64, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return nil, 0, err
		}
		buf := make([]byte, n)
		k, err := io.ReadFull(f, buf)
		if err != nil && err != io.ErrUnexpectedEOF {
			return nil, 0, err
		}
		return buf[:k], fi.Size(), nil
	}
	ba, sa, err := read(a)
	if err != nil {
		return err
	}
	bb, sb, err := read(b)
	if err != nil {
		return err
	}
	if sa != sb || !bytes.Equal(ba, bb) {
		return fmt.Errorf("database differs from %s", a)
	}
	return nil
}

// privatize makes a written data dir private to its owner, as etcd makes
// its own: directories 0700, files 0600. It also fsyncs every directory,
// so that the files' names are as durable as their contents.
func privatize(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o600)
		if d.IsDir() {
			mode = 0o700
		}
		if err := os.Chmod(path, mode); err != nil {
			return err
		}
		if d.IsDir() {
			return atomicfile.SyncDir(path)
		}
		return nil
	})
}

// existingAncestor returns path or its nearest ancestor that exists.
func existingAncestor(path string) string {
	for {
		if _, err := os.Stat(path); err == nil {
			return path
		}
		parent := filepath.Dir(path)
		if parent == path {
			return path
		}
		path = parent
	}
}

// emptyDir reports whether dir is an empty directory.
func emptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err == io.EOF {
		return true, nil
	}
	return len(names) == 0, err
}
