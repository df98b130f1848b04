package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
	"golang.org/x/sync/errgroup"

	"github.com/etcdops/etcdops/internal/atomicfile"

	// The bucket schemes a Store opens.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/memblob"
	_ "gocloud.dev/blob/s3blob"
)

// listPageSize is how many objects a List asks for at a time; backends
// cap it at their own maximum (1,000 for S3).
const listPageSize = 10000

// Schemes are the bucket URL schemes a Store opens.
var Schemes = []string{"file", "s3", "gs", "azblob", "mem"}

// ErrNotFound is returned for a snapshot that is not in the bucket.
var ErrNotFound = errors.New("no such snapshot")

// Store keeps snapshots and their manifests in a bucket. Objects are named
// by Name; a snapshot counts only once its manifest exists, which Save
// writes last.
type Store struct {
	bucket *blob.Bucket
	// URL is the bucket's URL with credentials removed, for messages.
	URL    string
	scheme string
	dir    string        // for file://, the directory objects are renamed into
	stall  time.Duration // see WithStallTimeout
}

// syncDir makes the renames of file:// objects durable: fsync of the
// directory that key landed in. Other backends need nothing.
func (s *Store) syncDir(key string) error {
	if s.dir == "" {
		return nil
	}
	return atomicfile.SyncDir(filepath.Dir(filepath.Join(s.dir, key)))
}

// closeNew commits an upload opened with IfNotExist, taking ownership of w:
// a name taken meanwhile is an error wrapping ErrNameTaken, and the object
// there is left as it was. fileblob checks and renames under a lock of its
// process only, so for file:// the object's directory is locked around
// its Close, which makes the check and rename one step among etcdops
// processes. On error before the Close, cancel aborts the upload. The
// Close runs under watch, the upload's stallWatch.
func (s *Store) closeNew(w *blob.Writer, key string, cancel context.CancelFunc, watch *stallWatch) error {
	if s.dir != "" {
		unlock, err := atomicfile.LockDir(filepath.Dir(filepath.Join(s.dir, key)))
		if err != nil {
			abort(w, cancel)
			return fmt.Errorf("upload %s to %s: %w", key, s.URL, err)
		}
		defer unlock()
	}
	err := watch.call(func() error { return closeWriter(w) })
	if errors.Is(err, ErrStalled) {
		return fmt.Errorf("upload %s to %s: %w", key, s.URL, err)
	}
	taken := gcerrors.Code(err) == gcerrors.FailedPrecondition
	if errors.Is(err, errDriverPanic) {
		// The upload failed for a reason the driver lost: the name is taken if an object has it.
		actx, cancel := context.WithTimeout(context.Background(), s.stall)
		defer cancel()
		_, aerr := s.bucket.Attributes(actx, key)
		taken = aerr == nil
	}
	if taken {
		return fmt.Errorf("upload %s to %s: %w", key, s.URL, ErrNameTaken)
	}
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", key, s.URL, cleanErr(err))
	}
	return nil
}

// reportsMD5 tells whether the backend computes an MD5 of every uploaded
// object by itself, to check an upload end to end against. GCS does; S3
// does not for multipart uploads (their ETag is no MD5), nor Azure for
// staged blocks, nor fileblob without its attribute files.
func (s *Store) reportsMD5() bool { return s.scheme == "gs" }

// OpenStore opens the bucket at rawURL (with an optional ?prefix=) and
// checks that it exists and can be reached.
func OpenStore(ctx context.Context, rawURL string, opts ...StoreOption) (*Store, error) {
	u, err := ParseBucketURL(rawURL)
	if err != nil {
		return nil, err
	}
	s := &Store{URL: Redact(rawURL), scheme: u.Scheme, stall: DefaultStallTimeout}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	b, err := blob.OpenBucket(ctx, withDefaults(u).String())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, inputErr(FieldBucket, Redact(rawURL), "no such bucket")
	}
	if reason, ok := badQuery(err); ok {
		return nil, inputErr(FieldBucket, Redact(rawURL), "%s: expected prefix or the parameters gocloud.dev documents for %s:// URLs", reason, u.Scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", Redact(rawURL), cleanErr(err))
	}
	s.bucket = b
	if u.Scheme == "file" {
		s.dir = filepath.Join(u.Path, u.Query().Get("prefix"))
	}
	var ok bool
	err = s.request(ctx, func(ctx context.Context) (err error) {
		ok, err = b.IsAccessible(ctx)
		return err
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("bucket %s: %w", s.URL, cleanErr(err))
	}
	if !ok {
		b.Close()
		return nil, inputErr(FieldBucket, s.URL, "no such bucket")
	}
	return s, nil
}

// ParseBucketURL checks that rawURL names a bucket of one of the Schemes; its
// errors are *InputError.
func ParseBucketURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return nil, inputErr(FieldBucket, Redact(rawURL), "expected scheme://bucket, with scheme one of %s", strings.Join(Schemes, ", "))
	}
	if !slices.Contains(Schemes, u.Scheme) {
		return nil, inputErr(FieldBucket, Redact(rawURL), "unknown scheme %q, expected one of %s", u.Scheme, strings.Join(Schemes, ", "))
	}
	switch {
	case u.Scheme == "file" && u.Path == "":
		return nil, inputErr(FieldBucket, Redact(rawURL), "expected file:///path/to/dir")
	case u.Scheme != "file" && u.Scheme != "mem" && u.Host == "":
		return nil, inputErr(FieldBucket, Redact(rawURL), "no bucket name: expected %s://BUCKET", u.Scheme)
	}
	return u, nil
}

// badQuery tells whether err, from opening a bucket, is about its URL's
// query, and returns the reason without the URL (gocloud repeats it with
// the parameters withDefaults added).
func badQuery(err error) (string, bool) {
	if err == nil || !strings.Contains(err.Error(), "query parameter") {
		return "", false
	}
	msg := err.Error()
	return msg[strings.LastIndex(msg, ": ")+2:], true
}

// withDefaults adds etcdops' defaults to a bucket URL. For file:// they are
// metadata=skip: gocloud's attribute files beside every object are not
// needed (manifests hold what matters) and would double the files that
// listing has to read; and no_tmp_dir (see below).
func withDefaults(u *url.URL) *url.URL {
	if u.Scheme != "file" {
		return u
	}
	q := u.Query()
	if !q.Has("metadata") {
		q.Set("metadata", "skip")
	}
	// Temporary files beside their targets: in os.TempDir() (fileblob's
	// default) the final rename fails when the bucket is on another disk.
	if !q.Has("no_tmp_dir") {
		q.Set("no_tmp_dir", "true")
	}
	v := *u
	v.RawQuery = q.Encode()
	return &v
}

// attributes reads key's attributes within the stall timeout.
func (s *Store) attributes(ctx context.Context, key string) (attrs *blob.Attributes, err error) {
	err = s.request(ctx, func(ctx context.Context) (err error) {
		attrs, err = s.bucket.Attributes(ctx, key)
		return err
	})
	return attrs, err
}

// delete removes key within the stall timeout.
func (s *Store) delete(ctx context.Context, key string) error {
	return s.request(ctx, func(ctx context.Context) error { return s.bucket.Delete(ctx, key) })
}

// Close releases the bucket.
func (s *Store) Close() error { return s.bucket.Close() }

// Bucket is the underlying bucket.
func (s *Store) Bucket() *blob.Bucket { return s.bucket }

// Snapshot is one stored snapshot as listed.
type Snapshot struct {
	Name Name
	Size int64
	// Manifest is nil for a snapshot without a manifest: an upload that
	// did not finish, which retention removes and nothing else uses.
	Manifest *Manifest
}

// Key is the snapshot's object name.
func (s Snapshot) Key() string { return s.Name.String() }

// Complete reports whether the snapshot's manifest exists.
func (s Snapshot) Complete() bool { return s.Manifest != nil }

// List returns the snapshots in the bucket, of one tag when tag is not
// empty, oldest first. With manifests false it reads names only (the
// manifests are then only known to exist); else it reads every manifest.
func (s *Store) List(ctx context.Context, tag string, manifests bool) ([]Snapshot, error) {
	sizes := map[string]int64{}
	hasManifest := map[string]bool{}
	// Large pages: some drivers (fileblob) walk the whole bucket per page.
	for token := blob.FirstPageToken; token != nil; {
		var objs []*blob.ListObject
		var next []byte
		err := s.request(ctx, func(ctx context.Context) (err error) {
			objs, next, err = s.bucket.ListPage(ctx, token, listPageSize, nil)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", s.URL, cleanErr(err))
		}
		for _, obj := range objs {
			if base, ok := strings.CutSuffix(obj.Key, ManifestExt); ok {
				hasManifest[base] = true
				continue
			}
			sizes[obj.Key] = obj.Size
		}
		token = next
	}
	var out []Snapshot
	for key, size := range sizes {
		n, ok := ParseName(key)
		if !ok || tag != "" && n.Tag != tag {
			continue
		}
		snap := Snapshot{Name: n, Size: size}
		if hasManifest[key] {
			snap.Manifest = &Manifest{}
		}
		out = append(out, snap)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Name.Time.Equal(out[j].Name.Time) {
			return out[i].Name.Time.Before(out[j].Name.Time)
		}
		return out[i].Key() < out[j].Key()
	})
	if manifests {
		if err := s.readManifests(ctx, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readManifests fills in the manifests of snaps, a few reads at a time.
func (s *Store) readManifests(ctx context.Context, snaps []Snapshot) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	var mu sync.Mutex
	for i := range snaps {
		if snaps[i].Manifest == nil {
			continue
		}
		g.Go(func() error {
			m, err := s.ReadManifest(ctx, snaps[i].Name)
			if err != nil {
				return err
			}
			mu.Lock()
			snaps[i].Manifest = m
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// ReadManifest reads the manifest of the snapshot n.
func (s *Store) ReadManifest(ctx context.Context, n Name) (*Manifest, error) {
	var b []byte
	err := s.request(ctx, func(ctx context.Context) (err error) {
		b, err = s.bucket.ReadAll(ctx, n.Manifest())
		return err
	})
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, fmt.Errorf("%s: %w", n, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", n.Manifest(), cleanErr(err))
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", n.Manifest(), err)
	}
	return &m, nil
}

// Find resolves "latest" (the newest complete snapshot, of tag when given)
// or a snapshot name, and reads its manifest.
func (s *Store) Find(ctx context.Context, nameOrLatest, tag string) (Snapshot, error) {
	if nameOrLatest == "" || nameOrLatest == "latest" {
		snaps, err := s.List(ctx, tag, false)
		if err != nil {
			return Snapshot{}, err
		}
		for i := len(snaps) - 1; i >= 0; i-- {
			if snaps[i].Complete() {
				m, err := s.ReadManifest(ctx, snaps[i].Name)
				if err != nil {
					return Snapshot{}, err
				}
				snaps[i].Manifest = m
				return snaps[i], nil
			}
		}
		if tag != "" {
			return Snapshot{}, fmt.Errorf("no complete snapshot of tag %q in %s: %w", tag, s.URL, ErrNotFound)
		}
		return Snapshot{}, fmt.Errorf("no complete snapshot in %s: %w", s.URL, ErrNotFound)
	}
	n, ok := ParseName(nameOrLatest)
	if !ok {
		return Snapshot{}, inputErr(FieldSnapshot, nameOrLatest, "expected <tag>_<YYYY-MM-DD_HH-MM-SS>.db[.zst][.age] or latest")
	}
	attrs, err := s.attributes(ctx, n.String())
	if gcerrors.Code(err) == gcerrors.NotFound {
		return Snapshot{}, fmt.Errorf("snapshot %s in %s: %w", n, s.URL, ErrNotFound)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", n, cleanErr(err))
	}
	m, err := s.ReadManifest(ctx, n)
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Name: n, Size: attrs.Size, Manifest: m}, nil
}

// Open returns a reader of the stored bytes of snapshot n.
func (s *Store) Open(ctx context.Context, n Name) (*Reader, error) {
	ctx, watch, cancel := s.watch(ctx)
	var r *blob.Reader
	err := watch.call(func() (err error) {
		r, err = s.bucket.NewReader(ctx, n.String(), &blob.ReaderOptions{BeforeRead: quietS3Read})
		return err
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("read %s from %s: %w", n, s.URL, cleanErr(err))
	}
	return &Reader{r: r, watch: watch, cancel: cancel}, nil
}

// quietS3Read stops the AWS SDK from printing "Skipped validation of
// multipart checksum" to stderr, past our logger, on every read of an
// object uploaded in parts: S3 keeps no whole-object checksum to validate
// for those, and every reader here checks the sha256 of the whole object
// against its manifest instead.
func quietS3Read(as func(any) bool) error {
	var opts *[]func(*s3.Options)
	if as(&opts) {
		*opts = append(*opts, func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true })
	}
	return nil
}

// Delete removes a snapshot: its manifest first, so that it stops counting
// before its data goes.
func (s *Store) Delete(ctx context.Context, n Name) error {
	if err := s.delete(ctx, n.Manifest()); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %s: %w", n.Manifest(), cleanErr(err))
	}
	if err := s.delete(ctx, n.String()); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %s: %w", n, cleanErr(err))
	}
	return nil
}

// secretParams are URL query parameters that may carry credentials.
var secretParams = []string{"sig", "signature", "key", "secret", "password", "token", "sas", "access_key", "secret_key", "x-amz-signature"}

// Redact returns rawURL with any user info and credential-like query
// values replaced, for logs and errors.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "<unparsable URL>"
	}
	changed := false
	if u.User != nil {
		u.User = url.User("REDACTED")
		changed = true
	}
	q := u.Query()
	for k := range q {
		for _, s := range secretParams {
			if strings.Contains(strings.ToLower(k), s) {
				q.Set(k, "REDACTED")
				changed = true
			}
		}
	}
	if !changed {
		return rawURL
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// cleanErr shortens gocloud errors to their first line: driver errors can
// span lines with request dumps.
func cleanErr(err error) error {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		return firstLineError{msg: strings.TrimSpace(msg[:i]), err: err}
	}
	return err
}

type firstLineError struct {
	msg string
	err error
}

func (e firstLineError) Error() string { return e.msg }
func (e firstLineError) Unwrap() error { return e.err }
