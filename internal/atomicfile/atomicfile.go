// Package atomicfile writes local files so that a reader sees the old file or the complete new one, never
// a part: the data goes to <path>.part, is fsynced, renamed over path, and the directory is fsynced.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrBusy is returned by Create when another process is writing the same path.
var ErrBusy = errors.New("another write to this file is in progress")

// File is a file being written. Nothing appears at its path until Commit; Abort (or a crash) leaves
// the old file, if any, untouched. A .part left behind by a killed process is reused by the next Create.
type File struct {
	*os.File
	path string
	done bool
}

// Create opens path's .part for writing with exactly mode perm. The .part is locked for as long as
// the File is open (the lock dies with the process), so a stale .part of a killed writer is cleared,
// while a writer still running makes Create fail with ErrBusy.
func Create(path string, perm fs.FileMode) (*File, error) {
	part := path + ".part"
	for {
		f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE, perm)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s: %w", path, ErrBusy)
			}
			return nil, err
		}
		// The .part may have been renamed into place (or replaced) between our open and our lock:
		// hold the lock only on the file that is still at the .part name.
		if same, err := sameFile(f, part); err != nil || !same {
			f.Close()
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			continue
		}
		af := &File{File: f, path: path}
		if err := f.Truncate(0); err != nil {
			af.Abort()
			return nil, err
		}
		// The umask may have narrowed perm, and a stale .part may have another mode.
		if err := f.Chmod(perm); err != nil {
			af.Abort()
			return nil, err
		}
		return af, nil
	}
}

func sameFile(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Lstat(path)
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

// Commit fsyncs the data, renames the .part over the path and fsyncs the directory. The lock is held
// until the rename is done: a Create that starts meanwhile fails with ErrBusy or finds no .part, never
// the finished data to truncate. On error the .part is removed and the old file, if any, is left as it was.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("%s: already closed", f.path)
	}
	f.done = true
	err := f.Sync()
	if err == nil {
		err = os.Rename(f.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return SyncDir(filepath.Dir(f.path))
}

// Abort closes and removes the .part. It is a no-op after Commit or Abort, so it can be deferred.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	os.Remove(f.Name())
	f.File.Close()
}

// Close aborts: a File is kept only by Commit.
func (f *File) Close() error {
	f.Abort()
	return nil
}

// WriteFile replaces path atomically by a file holding data with exactly mode perm.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}

// SyncDir fsyncs a directory, making the names created, renamed or removed in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// LockDir takes an exclusive lock (flock) on a directory, waiting for it, and returns its release.
// It serializes check-then-rename sequences on the names in dir among processes that all take it;
// the lock dies with the process.
func LockDir(dir string) (unlock func(), err error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX); err != nil {
		d.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { d.Close() }, nil
}
