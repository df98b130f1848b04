package backup

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"filippo.io/age"

	"github.com/etcdops/etcdops/internal/atomicfile"
)

// Fetch writes the plain etcd snapshot of snap to dst, the file that
// `etcdctl snapshot save` would have written, which stock
// `etcdutl snapshot restore` accepts. It checks everything the manifest
// records on the way. dst appears only when complete (atomicfile); an
// existing dst is replaced only with force. A fetch killed midway leaves a
// dst.part that the next one reuses; while one runs, another to the same
// dst fails with an error wrapping atomicfile.ErrBusy.
func Fetch(ctx context.Context, store *Store, snap Snapshot, identities []age.Identity, dst string, force bool, p Progress) error {
	if _, err := os.Lstat(dst); err == nil && !force {
		return &InputError{Field: FieldDestination, Value: dst, Err: ErrExists}
	}
	f, err := atomicfile.Create(dst, 0o600)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", snap.Key(), err)
	}
	defer f.Abort()
	if err := download(ctx, store, snap, identities, f.File, p); err != nil {
		return err
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("fetch %s: %w", snap.Key(), err)
	}
	return nil
}

// download decodes snap into f and checks the stored bytes, etcd's trailer
// and the raw sha256 against the manifest. On error f holds garbage.
func download(ctx context.Context, store *Store, snap Snapshot, identities []age.Identity, f *os.File, p Progress) error {
	m := snap.Manifest
	if m.Encryption == "age" && len(identities) == 0 {
		return &InputError{Field: FieldIdentity, Value: snap.Key(), Err: ErrNeedsIdentity}
	}

	r, err := store.Open(ctx, snap.Name)
	if err != nil {
		return err
	}
	defer r.Close()
	// As in Save: one sha256 pass when the stored bytes are the raw ones.
	plain := snap.Name.Ext == ".db"
	var stored *digest
	var in io.Reader = r
	if !plain {
		stored = newDigest(false)
		in = io.TeeReader(r, stored)
	}
	if p != nil {
		in = p.Wrap(in, r.Size())
		defer p.Done()
	}
	dec, err := Decoder(in, snap.Name.Ext, identities)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", snap.Key(), err)
	}
	defer dec.Close()
	trailer := newTrailerCheck()
	_, err = io.Copy(io.MultiWriter(f, trailer), dec)
	// Drain what the decoder left so that the stored digest covers it all.
	if err == nil && !plain {
		_, err = io.Copy(io.Discard, in)
	}
	if serr := r.stalled(); serr != nil {
		return fmt.Errorf("fetch %s from %s: %w", snap.Key(), store.URL, serr)
	}
	if err != nil {
		return fmt.Errorf("fetch %s: %w", snap.Key(), cleanErr(err))
	}
	trailerErr := trailer.Check()
	rawSHA := hex.EncodeToString(trailer.RawSHA256())
	if plain {
		stored = &digest{n: trailer.Size(), hexSum: rawSHA}
	}
	if err := matchStored(snap, stored); err != nil {
		return err
	}
	if trailerErr != nil {
		return fmt.Errorf("snapshot %s: %w", snap.Key(), trailerErr)
	}
	if trailer.Size() != m.RawSize || rawSHA != m.RawSHA256 {
		return fmt.Errorf("snapshot %s decodes to %d bytes with sha256 %s, manifest says %d bytes with %s",
			snap.Key(), trailer.Size(), rawSHA, m.RawSize, m.RawSHA256)
	}
	return nil
}
