package backup

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/types"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Dialer connects a client to the given endpoints.
type Dialer func(endpoints ...string) (*clientv3.Client, error)

// Progress shows a long transfer; nil shows nothing.
type Progress interface {
	// Wrap returns r counted towards a total of about total bytes.
	Wrap(r io.Reader, total int64) io.Reader
	Done()
}

// SaveConfig says where Save takes a snapshot from and how it stores it.
type SaveConfig struct {
	Endpoints []string
	Dial      Dialer
	// Member names the member to take the snapshot from; empty picks one.
	Member string
	// Tag names the snapshot; empty uses DefaultTag.
	Tag   string
	Codec Codec
	// CommandTimeout bounds each short request; the snapshot transfer
	// itself is bound only by ctx.
	CommandTimeout time.Duration
	Progress       Progress
	Logger         *zap.Logger
	EtcdopsVersion string
	Now            func() time.Time
	// At, when set, is the time the snapshot is named after (a schedule's
	// slot) instead of the time the save starts.
	At time.Time
	// AfterPrune, when set, runs after Backup's retention with its
	// decisions (pitr.PruneLog: the log that the removed snapshots
	// followed); its error counts as retention's.
	AfterPrune func(ctx context.Context, store *Store, ds []Decision, lg *zap.Logger) error
	// KeepMore, when set, keeps more than the policy in Backup's retention
	// (pitr.KeepWithin: a log's point-in-time window).
	KeepMore KeepMore
}

// Multipart uploads (S3, GCS, Azure) send parts of uploadPartSize, at most
// uploadConcurrency at a time: memory stays flat whatever the size. 8 MiB
// parts (as the aws CLI sends) cost MinIO less per byte than S3's 5 MiB
// minimum; see docs/benchmarks.md.
const (
	uploadPartSize    = 8 << 20
	uploadConcurrency = 2
)

// UploadMemory is what a multipart upload keeps in memory: the parts in
// flight and the one being filled.
const UploadMemory = (uploadConcurrency + 1) * uploadPartSize

// Save takes one snapshot and stores it with its manifest. The snapshot is
// streamed from the member through the codec into the bucket while etcd's
// sha256 trailer is checked and its own revision is read on the way; no
// local copy is made. On any failure or cancellation the upload is aborted
// and neither object becomes visible. Both objects are written only if
// their names are free (the bucket's no-overwrite condition): of two saves
// that pick the same name, one fails with an error wrapping ErrNameTaken
// and leaves the other's objects as they are.
func Save(ctx context.Context, store *Store, cfg SaveConfig) (*Manifest, error) {
	lg := cfg.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	src, err := PickSource(ctx, cfg.Dial, cfg.Endpoints, cfg.Member, cfg.CommandTimeout)
	if err != nil {
		return nil, err
	}
	tag := cfg.Tag
	if tag == "" {
		tag = DefaultTag(src, len(cfg.Endpoints))
	}
	if err := ValidateTag(tag); err != nil {
		return nil, err
	}

	start := cfg.Now()
	at := start
	if !cfg.At.IsZero() {
		at = cfg.At
	}
	name := Name{Tag: tag, Time: at.UTC().Truncate(time.Second), Ext: cfg.Codec.Ext()}
	if _, err := store.attributes(ctx, name.String()); err == nil {
		return nil, fmt.Errorf("save %s in %s: %w", name, store.URL, ErrNameTaken)
	} else if gcerrors.Code(err) != gcerrors.NotFound {
		return nil, fmt.Errorf("bucket %s: %w", store.URL, cleanErr(err))
	}

	scli, err := cfg.Dial(src.Endpoint)
	if err != nil {
		return nil, err
	}
	defer scli.Close()
	lg.Info("taking snapshot", zap.String("member", src.Name), zap.String("endpoint", src.Endpoint),
		zap.String("to", store.URL+"/"+name.String()))

	cfg.Logger = lg
	m, err := stream(ctx, store, scli, name, src, cfg)
	if err != nil {
		return nil, fmt.Errorf("save %s: %w", name, err)
	}
	m.Duration = cfg.Now().Sub(start).Round(time.Millisecond).String()
	if err := writeManifest(ctx, store, name, m); err != nil {
		// Without its manifest the snapshot does not count; remove it.
		store.cleanUp(ctx, name.String())
		return nil, fmt.Errorf("save %s: %w", name, err)
	}
	lg.Info("snapshot saved", zap.String("name", name.String()), zap.Int64("revision", m.Revision),
		zap.Int64("stored-bytes", m.StoredSize))
	return m, nil
}

// tuneS3Upload makes an S3 upload start with one part: the AWS transfer
// manager otherwise reads its first 16 MiB (its multipart threshold) into
// a growing buffer before it sends anything, which doubles the memory of a
// streamed upload. gocloud.dev hands out the transfer manager for such
// changes; everything else gocloud set on it is kept.
func (s *Store) tuneS3Upload(as func(any) bool) {
	var tm *transfermanager.Client
	var client *s3.Client
	if !as(&tm) || !s.bucket.As(&client) {
		return
	}
	*tm = *transfermanager.New(client, func(o *transfermanager.Options) {
		o.PartSizeBytes, o.MultipartUploadThreshold = uploadPartSize, uploadPartSize
		o.Concurrency = uploadConcurrency
		o.RequestChecksumCalculation = client.Options().RequestChecksumCalculation
	})
}

// stream copies the snapshot into the bucket, checks it and reads its
// revision on the way, and only then lets the object appear.
func stream(ctx context.Context, store *Store, cli *clientv3.Client, name Name, src Source, cfg SaveConfig) (_ *Manifest, err error) {
	wctx, watch, cancel := store.watch(ctx)
	defer cancel() // also ends the snapshot stream
	defer func() {
		// A stalled bucket fails the stream and the encoder too: name the cause.
		if serr := watch.stalled(); err != nil && serr != nil {
			err = fmt.Errorf("upload to %s: %w", store.URL, serr)
		}
	}()
	snap, err := openSnapshot(wctx, cli)
	if err != nil {
		return nil, fmt.Errorf("snapshot from %s: %w", src.Endpoint, err)
	}
	var file *os.File // fileblob's temporary file, to fsync
	w, err := store.bucket.NewWriter(wctx, name.String(), &blob.WriterOptions{
		ContentType: "application/octet-stream", IfNotExist: true,
		// Parts in flight bound the memory of multipart uploads.
		BufferSize: uploadPartSize, MaxConcurrency: uploadConcurrency,
		BeforeWrite: func(as func(any) bool) error {
			store.tuneS3Upload(as)
			return privateFile(as, &file)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("upload to %s: %w", store.URL, cleanErr(err))
	}
	committed := false
	defer func() {
		if !committed {
			abort(w, cancel)
		}
	}()

	// One sha256 pass serves etcd's trailer check and the raw digest; the
	// stored bytes need their own only when a codec changes them, and an
	// md5 only where the backend reports one to compare with.
	plain := cfg.Codec.Ext() == ".db"
	var stored *digest
	var sink io.Writer = watchedWriter{w, watch}
	if !plain || store.reportsMD5() {
		stored = newDigest(store.reportsMD5())
		sink = io.MultiWriter(sink, stored)
	}
	enc, err := cfg.Codec.Encoder(sink)
	if err != nil {
		return nil, err
	}
	trailer := newTrailerCheck()
	var in io.Reader = snap
	if cfg.Progress != nil {
		in = cfg.Progress.Wrap(in, src.DBSize+trailerSize)
		defer cfg.Progress.Done()
	}
	scanner := &revisionScanner{}
	began := time.Now()
	if _, err := copyFanout(in, []io.Writer{trailer, scanner}, []io.Writer{enc}); err != nil {
		var we *bucketWriteError
		if errors.As(err, &we) {
			return nil, fmt.Errorf("upload to %s: %w", store.URL, cleanErr(we.err))
		}
		return nil, fmt.Errorf("stream from %s: %w", src.Endpoint, err)
	}
	if err := trailer.Check(); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	rawSize, rawSHA := trailer.Size(), hex.EncodeToString(trailer.RawSHA256())
	storedSize, storedSHA := rawSize, rawSHA
	if !plain {
		storedSize, storedSHA = stored.n, stored.sha256Hex()
	}
	rev, err := scanner.Revision()
	if err != nil {
		// The snapshot itself passed etcd's checksum: keep it. A second
		// full read only to fill in this field would double the cost of
		// every such save and need the local disk streaming avoids;
		// verify reads the database with etcd's own code anyway.
		cfg.Logger.Warn("snapshot saved with its revision unknown: the stream reader does not know this database's layout; "+
			"`etcdops backup verify` reads it with etcd's own code", zap.String("name", name.String()), zap.Error(err))
		rev = RevisionUnknown
	}
	keys, err := countKeys(ctx, cli, rev, cfg.CommandTimeout)
	if err != nil {
		return nil, err
	}

	streamed, taken := time.Now(), cfg.Now()
	if file != nil {
		// fileblob renames without syncing; a snapshot must survive a crash.
		if err := file.Sync(); err != nil {
			return nil, fmt.Errorf("fsync %s: %w", name, err)
		}
	}
	cfg.Logger.Debug("snapshot streamed", zap.Duration("stream", streamed.Sub(began)), zap.Duration("fsync", time.Since(streamed)))
	committed = true
	if err := store.closeNew(w, name.String(), cancel, watch); err != nil {
		return nil, err
	}
	if stored != nil && stored.md5 != nil {
		if err := checkStoredMD5(ctx, store, name, stored.md5.Sum(nil)); err != nil {
			store.cleanUp(ctx, name.String())
			return nil, err
		}
	}
	m := &Manifest{
		Version: ManifestVersion, Name: name.String(), Tag: name.Tag, Time: name.Time, Taken: taken.UTC(),
		Revision: rev, TotalKeys: keys,
		ClusterID: types.ID(src.ClusterID).String(), MemberID: types.ID(src.ID).String(), MemberName: src.Name,
		Endpoint: src.Endpoint, EtcdVersion: src.Version, StorageVersion: snap.version,
		RawSize: rawSize, RawSHA256: rawSHA, StoredSize: storedSize, StoredSHA256: storedSHA,
		Compression: "none", Encryption: "none", Recipients: cfg.Codec.Fingerprints, EtcdopsVersion: cfg.EtcdopsVersion,
	}
	if cfg.Codec.Compress {
		m.Compression = "zstd"
	}
	if len(cfg.Codec.Recipients) > 0 {
		m.Encryption = "age"
	}
	return m, nil
}

// abort cancels an upload, so that nothing becomes visible, and closes its
// writer.
func abort(w *blob.Writer, cancel context.CancelFunc) {
	cancel()
	closeWriter(w)
}

// errDriverPanic is what closeWriter returns for a Close that panicked.
var errDriverPanic = errors.New("upload failed (the bucket driver lost the reason)")

// closeWriter closes w. gocloud.dev v0.47.0's azureblob writer panics in
// Close after any failed upload (its upload goroutine clears the pipe that
// Close then closes), losing the upload's error: the panic is contained
// here and becomes errDriverPanic.
func closeWriter(w *blob.Writer) (err error) {
	defer func() {
		if recover() != nil {
			err = errDriverPanic
		}
	}()
	return w.Close()
}

// checkStoredMD5 compares the MD5 the backend reports for the object, where
// it reports one, with the MD5 of the bytes sent: an end-to-end check of
// the upload.
func checkStoredMD5(ctx context.Context, store *Store, name Name, sent []byte) error {
	attrs, err := store.attributes(ctx, name.String())
	if err != nil {
		return fmt.Errorf("check upload of %s: %w", name, cleanErr(err))
	}
	if len(attrs.MD5) > 0 && !bytes.Equal(attrs.MD5, sent) {
		return fmt.Errorf("upload of %s corrupted in transit: bucket has md5 %x, sent %x", name, attrs.MD5, sent)
	}
	return nil
}

func writeManifest(ctx context.Context, store *Store, name Name, m *Manifest) error {
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	sum := md5.Sum(b)
	wctx, watch, cancel := store.watch(ctx)
	defer cancel()
	var file *os.File
	opts := &blob.WriterOptions{ContentType: "application/json", ContentMD5: sum[:], IfNotExist: true,
		BeforeWrite: func(as func(any) bool) error { return privateFile(as, &file) }}
	w, err := store.bucket.NewWriter(wctx, name.Manifest(), opts)
	if err != nil {
		return fmt.Errorf("write manifest %s: %w", name.Manifest(), cleanErr(err))
	}
	_, err = watchedWriter{w, watch}.Write(b)
	if err == nil && file != nil {
		err = file.Sync()
	}
	if err != nil {
		abort(w, cancel)
		return fmt.Errorf("write manifest %s: %w", name.Manifest(), err)
	}
	if err := store.closeNew(w, name.Manifest(), cancel, watch); err != nil {
		return err
	}
	return store.syncDir(name.Manifest())
}

// countKeys counts the keys at rev on the member the snapshot came from.
// When rev was compacted away meanwhile, the count is unknown: -1.
func countKeys(ctx context.Context, cli *clientv3.Client, rev int64, timeout time.Duration) (int64, error) {
	if rev == 0 {
		return 0, nil
	}
	if rev == RevisionUnknown {
		return -1, nil
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := cli.Get(cctx, "\x00", clientv3.WithFromKey(), clientv3.WithCountOnly(), clientv3.WithRev(rev), clientv3.WithSerializable())
	if errors.Is(err, rpctypes.ErrCompacted) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("count keys at revision %d: %w", rev, err)
	}
	return resp.Count, nil
}

// digest counts, and hashes with sha256 and md5, what is written to it.
type digest struct {
	sha, md5 hash.Hash
	n        int64
	hexSum   string // a known sha256 instead of sha
}

// newDigest returns a digest; withMD5 adds the md5 that backends report.
func newDigest(withMD5 bool) *digest {
	d := &digest{sha: sha256.New()}
	if withMD5 {
		d.md5 = md5.New()
	}
	return d
}

func (d *digest) Write(p []byte) (int, error) {
	d.sha.Write(p)
	if d.md5 != nil {
		d.md5.Write(p)
	}
	d.n += int64(len(p))
	return len(p), nil
}

func (d *digest) sha256Hex() string {
	if d.sha == nil {
		return d.hexSum
	}
	return hex.EncodeToString(d.sha.Sum(nil))
}

// privateFile sets *file to fileblob's temporary file, if the bucket is
// file://, and makes it 0600 before a byte is written: fileblob creates it
// 0666 less the umask, and snapshots and manifests hold etcd's data.
func privateFile(as func(any) bool, file **os.File) error {
	if !as(file) || *file == nil {
		return nil
	}
	return (*file).Chmod(0o600)
}
