package backup

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"filippo.io/age"
)

// Fetch writes the plain etcd snapshot of snap to dst, the file that
// `etcdctl snapshot save` would have written, which stock
// `etcdutl snapshot restore` accepts. It checks everything the manifest
// records on the way. dst appears only when complete; an existing dst is
// replaced only with force.
func Fetch(ctx context.Context, store *Store, snap Snapshot, identities []age.Identity, dst string, force bool, p Progress) error {
	if _, err := os.Lstat(dst); err == nil && !force {
		return fmt.Errorf("--to %s: file exists (use --force to replace it)", dst)
	}
	part := dst + ".part"
	if err := download(ctx, store, snap, identities, part, p); err != nil {
		os.Remove(part)
		return err
	}
	if err := os.Rename(part, dst); err != nil {
		os.Remove(part)
		return fmt.Errorf("fetch %s: %w", snap.Key(), err)
	}
	return nil
}

// download decodes snap into a new private file at path, fsyncs it, and
// checks the stored bytes, etcd's trailer and the raw sha256 against the
// manifest. On error path may hold garbage; the caller removes it.
func download(ctx context.Context, store *Store, snap Snapshot, identities []age.Identity, path string, p Progress) error {
	m := snap.Manifest
	if m.Encryption == "age" && len(identities) == 0 {
		return fmt.Errorf("snapshot %s is encrypted: give the age identity file with --identity", snap.Key())
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", snap.Key(), err)
	}
	defer f.Close()

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
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fetch %s: %w", snap.Key(), err)
	}
	return f.Close()
}
