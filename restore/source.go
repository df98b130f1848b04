package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/etcdops/etcdops/backup"
)

// Source says where the snapshot to restore comes from.
type Source struct {
	// From is a local snapshot file or a bucket URL (scheme://…).
	From string
	// Snapshot names the snapshot in a bucket, or is "latest": the newest
	// complete snapshot (of Tag, when set). Only for buckets.
	Snapshot, Tag string
	// Identities decrypt age-encrypted snapshots.
	Identities []age.Identity
	// SkipHashCheck accepts a plain file without etcd's sha256 trailer, as
	// a database copied out of a data dir is.
	SkipHashCheck bool
	// SpoolDir holds the decoded copy of a bucket's or an encoded file's
	// snapshot; empty means the system's temporary dir.
	SpoolDir string
	// Bucket tunes the bucket of a bucket URL (its stall timeout).
	Bucket   []backup.StoreOption
	Progress backup.Progress
	Logger   *zap.Logger
}

// IsBucket reports whether from is a bucket URL rather than a file.
func IsBucket(from string) bool { return strings.Contains(from, "://") }

// Validate checks the source's flags together; its errors are *ConfigError.
func (s Source) Validate() error {
	switch {
	case s.From == "":
		return configErr(FieldFrom, "", "expected a snapshot file or a bucket URL")
	case IsBucket(s.From) && s.Snapshot == "":
		return configErr(FieldSnapshot, "", "expected a snapshot NAME or latest with a bucket URL (etcdops backup list shows the names)")
	case !IsBucket(s.From) && (s.Snapshot != "" || s.Tag != ""):
		return configErr(FieldSnapshot, s.Snapshot, "expected only with a bucket URL, not with the file %s", s.From)
	}
	return nil
}

// Snapshot is a checked plain etcd snapshot on local disk, ready to restore
// from. Close removes any decoded copy.
type Snapshot struct {
	// Source is where it was read: a file, or a bucket's URL and name.
	Source string `json:"source"`
	// Encoding is how the source stores it: plain, zstd, age or zstd+age.
	Encoding string `json:"encoding"`
	// Checks name what was verified before anything was written.
	Checks   []string         `json:"checks"`
	Manifest *backup.Manifest `json:"manifest,omitempty"`
	Facts

	path  string // the plain snapshot
	spool string // a temporary dir to remove, or ""
	// checkHash, when set, checks the sha256 of a file read in place.
	checkHash func() error
	facts     Facts // what checkDB read
	done      bool  // Inspect returned nil
}

// Inspected reports whether Inspect filled in Facts.
func (s *Snapshot) Inspected() bool { return s.done }

// Facts are what the database of a snapshot or a data dir holds.
type Facts struct {
	// Revision is the newest revision in the key space.
	Revision int64 `json:"revision"`
	// CompactRevision is the revision of the last finished compaction.
	CompactRevision int64 `json:"compact_revision"`
	Keys            int64 `json:"keys"`
	// Size is the database's size in bytes, without etcd's trailer.
	Size int64 `json:"size"`
	// KVHash is etcd's hash of the key space at Revision, which
	// `etcdctl endpoint hashkv` prints for a member started on it.
	KVHash         uint32 `json:"kv_hash"`
	StorageVersion string `json:"storage_version,omitempty"`

	// contentHash is crc32c of the key space's revisions up to Revision,
	// which a restored member's database must match.
	contentHash uint32
}

// Close removes the decoded copy, if one was made.
func (s *Snapshot) Close() error {
	if s.spool == "" {
		return nil
	}
	return os.RemoveAll(s.spool)
}

// OpenSnapshot finds the snapshot, decodes it when it is compressed or
// encrypted, and checks it: etcd's sha256 trailer, the sha256s of a
// manifest where there is one, and the database's pages, and reads its
// facts (revision, keys and KV hash, compared with a manifest's). It writes
// nothing but a private temporary copy in SpoolDir when it must decode.
func OpenSnapshot(ctx context.Context, src Source) (*Snapshot, error) {
	if err := src.Validate(); err != nil {
		return nil, err
	}
	lg := src.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	var s *Snapshot
	var err error
	if IsBucket(src.From) {
		s, err = fromBucket(ctx, src)
	} else {
		s, err = fromFile(ctx, src, lg)
	}
	if err != nil {
		return nil, err
	}
	if err := s.check(ctx, lg); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// check runs the checks of a snapshot that precede writing (its sha256
// where checkHash is set, the database's pages) and reads its facts.
func (s *Snapshot) check(ctx context.Context, lg *zap.Logger) error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return err
	}
	s.Size = fi.Size()
	if s.Size%512 == trailerSize {
		s.Size -= trailerSize
	}
	lg.Info("checking the snapshot", zap.String("snapshot", s.Source), zap.String("size", humanize.IBytes(uint64(s.Size))))
	// Before anything is written: the sha256 of a file read in place (a
	// decoded one was checked on the way), then every page of the database
	// that etcd's restore reads, together with its facts (checkDB). Never
	// side by side: a damaged branch page can send a bolt cursor round in
	// a loop that no error or context ends, so bolt only ever reads what
	// the sha256 vouched for (or --skip-hash-check allowed).
	start := time.Now()
	if s.checkHash != nil {
		if err := s.checkHash(); err != nil {
			return err
		}
		lg.Debug("sha256 checked", zap.Duration("took", time.Since(start)))
	}
	facts, err := checkDB(ctx, s.path)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", s.Source, err)
	}
	s.facts, s.done = facts, false
	lg.Debug("database pages checked and facts read", zap.Duration("took", time.Since(start)))
	if !slices.Contains(s.Checks, checkBolt) {
		s.Checks = append(s.Checks, checkBolt)
	}
	return s.Inspect()
}

// Inspect fills in Facts and compares them with a manifest's. OpenSnapshot
// has called it; it may be called again.
func (s *Snapshot) Inspect() error {
	s.Facts = s.facts
	if m := s.Manifest; m != nil && !slices.Contains(s.Checks, checkManifest) {
		if m.Revision != backup.RevisionUnknown && s.Revision != m.Revision || m.TotalKeys >= 0 && s.Keys != m.TotalKeys {
			return fmt.Errorf("snapshot %s: database has revision %d and %d keys, manifest says %d and %d",
				s.Source, s.Revision, s.Keys, m.Revision, m.TotalKeys)
		}
		s.Checks = append(s.Checks, checkManifest)
	}
	s.done = true
	return nil
}

// checkBolt names checkDB's walk of the database's pages in Checks.
const checkBolt = "bolt pages"

// checkManifest names the comparison with a manifest in Checks.
const checkManifest = "manifest revision and keys"

// trailerSize is the size of etcd's sha256 trailer.
const trailerSize = 32

func fromBucket(ctx context.Context, src Source) (*Snapshot, error) {
	store, err := backup.OpenStore(ctx, src.From, src.Bucket...)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	snap, err := store.Find(ctx, src.Snapshot, src.Tag)
	if err != nil {
		return nil, err
	}
	return fetch(ctx, store, snap, store.URL+"/"+snap.Key(), src)
}

// fetch decodes a snapshot of a store into the spool with backup.Fetch,
// which checks it against its manifest.
func fetch(ctx context.Context, store *backup.Store, snap backup.Snapshot, source string, src Source) (*Snapshot, error) {
	s := &Snapshot{Source: source, Encoding: encoding(snap.Name.Ext), Manifest: snap.Manifest}
	if err := s.makeSpool(src.SpoolDir); err != nil {
		return nil, err
	}
	if err := backup.Fetch(ctx, store, snap, src.Identities, s.path, false, src.Progress); err != nil {
		s.Close()
		return nil, err
	}
	s.Checks = []string{"stored sha256", "etcd sha256 trailer", "manifest sha256"}
	return s, nil
}

func fromFile(ctx context.Context, src Source, lg *zap.Logger) (*Snapshot, error) {
	path := src.From
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("snapshot %s: expected a snapshot file", path)
	}
	store, snap, err := backup.OpenLocal(ctx, path)
	switch {
	case err == nil && snap.Name.Ext == backup.Extension(false, false):
		// Stored as is: check it where it lies instead of copying it.
		store.Close()
		s := &Snapshot{Source: path, Encoding: "plain", Manifest: snap.Manifest, path: path}
		s.checkHash = func() error { return backup.CheckFile(ctx, path, snap.Manifest, src.Progress) }
		s.Checks = []string{"etcd sha256 trailer", "manifest sha256"}
		return s, nil
	case err == nil:
		defer store.Close()
		return fetch(ctx, store, snap, path, src)
	case !errors.Is(err, backup.ErrNotFound):
		return nil, err
	}
	if ext := encodedExt(path); ext != "" {
		s := &Snapshot{Source: path, Encoding: encoding(ext)}
		if err := s.makeSpool(src.SpoolDir); err != nil {
			return nil, err
		}
		if err := backup.DecodeFile(ctx, path, ext, src.Identities, s.path, src.Progress); err != nil {
			s.Close()
			return nil, err
		}
		s.Checks = []string{"etcd sha256 trailer"}
		return s, nil
	}
	s := &Snapshot{Source: path, Encoding: "plain", path: path}
	if src.SkipHashCheck {
		lg.Warn("not checking the snapshot's sha256, as asked; its database's pages are still checked", zap.String("snapshot", path))
		return s, nil
	}
	s.checkHash = func() error {
		err := backup.CheckFile(ctx, path, nil, src.Progress)
		if errors.Is(err, backup.ErrNoTrailer) {
			return fmt.Errorf("%w: a database copied from a data dir has none", err)
		}
		return err
	}
	s.Checks = []string{"etcd sha256 trailer"}
	return s, nil
}

func (s *Snapshot) makeSpool(dir string) error {
	spool, err := os.MkdirTemp(dir, ".etcdops-restore-")
	if err != nil {
		return fmt.Errorf("spool dir: %w", err)
	}
	s.spool, s.path = spool, filepath.Join(spool, "snapshot.db")
	return nil
}

// encodedExt returns the codec extension a file name ends with, if any.
func encodedExt(path string) string {
	for _, ext := range []string{".zst.age", ".age", ".zst"} {
		if strings.HasSuffix(path, ext) {
			return ext
		}
	}
	return ""
}

func encoding(ext string) string {
	var parts []string
	if strings.Contains(ext, ".zst") {
		parts = append(parts, "zstd")
	}
	if strings.HasSuffix(ext, ".age") {
		parts = append(parts, "age")
	}
	if len(parts) == 0 {
		return "plain"
	}
	return strings.Join(parts, "+")
}
