package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"filippo.io/age"
)

// ErrNoTrailer is returned for a snapshot without etcd's sha256 trailer,
// such as a database file copied from a data dir.
var ErrNoTrailer = errNoTrailer

// OpenLocal opens a snapshot that `etcdops backup save` stored and that was
// copied to local disk with its manifest (<file>.json) beside it: the file's
// directory becomes a file:// store, so that Fetch reads the file with every
// check it makes on a bucket. It returns an error wrapping ErrNotFound when
// the file's name is not a snapshot name or it has no manifest: it is then a
// plain snapshot, or one of unknown origin.
func OpenLocal(ctx context.Context, path string) (*Store, Snapshot, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, Snapshot{}, err
	}
	dir, base := filepath.Split(abs)
	if _, ok := ParseName(base); !ok {
		return nil, Snapshot{}, fmt.Errorf("%s: not a snapshot name: %w", path, ErrNotFound)
	}
	if _, err := os.Stat(abs + ManifestExt); errors.Is(err, fs.ErrNotExist) {
		return nil, Snapshot{}, fmt.Errorf("%s: no manifest %s: %w", path, base+ManifestExt, ErrNotFound)
	}
	store, err := OpenStore(ctx, (&url.URL{Scheme: "file", Path: dir}).String())
	if err != nil {
		return nil, Snapshot{}, err
	}
	snap, err := store.Find(ctx, base, "")
	if err != nil {
		store.Close()
		return nil, Snapshot{}, err
	}
	return store, snap, nil
}

// CheckFile reads the plain etcd snapshot at path, as `etcdctl snapshot save`
// writes it, and checks etcd's sha256 trailer; with a manifest, also the
// file's size and sha256 against it. It changes nothing.
func CheckFile(ctx context.Context, path string, m *Manifest, p Progress) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	var in io.Reader = ctxReader{ctx, f}
	if p != nil {
		in = p.Wrap(in, fi.Size())
		defer p.Done()
	}
	trailer := newTrailerCheck()
	w := io.Writer(trailer)
	whole := sha256.New()
	if m != nil {
		w = io.MultiWriter(trailer, whole)
	}
	if _, err := io.CopyBuffer(w, in, make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := trailer.Check(); err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	if m != nil {
		if sum := hex.EncodeToString(whole.Sum(nil)); fi.Size() != m.RawSize || sum != m.RawSHA256 {
			return fmt.Errorf("snapshot %s is corrupt: %d bytes with sha256 %s, manifest says %d bytes with %s",
				path, fi.Size(), sum, m.RawSize, m.RawSHA256)
		}
	}
	return nil
}

// DecodeFile writes the plain snapshot held in the local file src, encoded
// as its name extension ext says (.zst, .age or .zst.age), to the new file
// dst (mode 0600, fsynced), and checks etcd's sha256 trailer on the way. It
// is for files without a manifest; OpenLocal and Fetch check the others
// against theirs. On error dst may hold garbage; the caller removes it.
func DecodeFile(ctx context.Context, src, ext string, identities []age.Identity, dst string, p Progress) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	var r io.Reader = ctxReader{ctx, in}
	if p != nil {
		r = p.Wrap(r, fi.Size())
		defer p.Done()
	}
	dec, err := Decoder(r, ext, identities)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", src, err)
	}
	defer dec.Close()
	trailer := newTrailerCheck()
	if _, err := io.Copy(io.MultiWriter(out, trailer), dec); err != nil {
		return fmt.Errorf("decode %s: %w", src, err)
	}
	if err := trailer.Check(); err != nil {
		return fmt.Errorf("snapshot %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}

// ctxReader stops a long read when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
