package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Objects other than snapshots (a point-in-time log's segments) are stored
// with the same guarantees as snapshots: written whole or not at all, only
// under a free name, fsynced on file://, 0600, under the stall timeout.

// ErrNoObject is returned for an object that is not in the bucket.
var ErrNoObject = errors.New("no such object")

// Object is one listed object.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// WriteObject stores what write writes under key. Nothing is visible
// until write returned nil and the upload committed; on any failure the
// upload is aborted. The object is written only if key is free: else the
// error wraps ErrNameTaken and the object there is left as it was.
func (s *Store) WriteObject(ctx context.Context, key string, write func(io.Writer) error) (err error) {
	wctx, watch, cancel := s.watch(ctx)
	defer cancel()
	defer func() {
		if serr := watch.stalled(); err != nil && serr != nil {
			err = fmt.Errorf("upload %s to %s: %w", key, s.URL, serr)
		}
	}()
	var file *os.File
	w, err := s.bucket.NewWriter(wctx, key, &blob.WriterOptions{
		ContentType: "application/octet-stream", IfNotExist: true,
		BufferSize: uploadPartSize, MaxConcurrency: uploadConcurrency,
		BeforeWrite: func(as func(any) bool) error {
			s.tuneS3Upload(as)
			return privateFile(as, &file)
		},
	})
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", key, s.URL, cleanErr(err))
	}
	err = write(watchedWriter{w, watch})
	if err == nil && file != nil {
		err = file.Sync()
	}
	if err != nil {
		abort(w, cancel)
		var we *bucketWriteError
		if errors.As(err, &we) {
			err = cleanErr(we.err)
		}
		return fmt.Errorf("upload %s to %s: %w", key, s.URL, err)
	}
	if err := s.closeNew(w, key, cancel, watch); err != nil {
		return err
	}
	return s.syncDir(key)
}

// OpenObject returns a reader of the object key; ErrNoObject when there is
// none.
func (s *Store) OpenObject(ctx context.Context, key string) (*Reader, error) {
	ctx, watch, cancel := s.watch(ctx)
	var r *blob.Reader
	err := watch.call(func() (err error) {
		r, err = s.bucket.NewReader(ctx, key, &blob.ReaderOptions{BeforeRead: quietS3Read})
		return err
	})
	if gcerrors.Code(err) == gcerrors.NotFound {
		cancel()
		return nil, fmt.Errorf("read %s from %s: %w", key, s.URL, ErrNoObject)
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("read %s from %s: %w", key, s.URL, cleanErr(err))
	}
	return &Reader{r: r, watch: watch, cancel: cancel}, nil
}

// ListObjects returns the objects whose keys start with prefix, in key
// order, without fileblob's temporary files.
func (s *Store) ListObjects(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	for token := blob.FirstPageToken; token != nil; {
		var objs []*blob.ListObject
		var next []byte
		err := s.request(ctx, func(ctx context.Context) (err error) {
			objs, next, err = s.bucket.ListPage(ctx, token, listPageSize, &blob.ListOptions{Prefix: prefix})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", s.URL, cleanErr(err))
		}
		for _, o := range objs {
			if s.scheme == "file" && strings.HasSuffix(o.Key, ".tmp") {
				continue
			}
			out = append(out, Object{Key: o.Key, Size: o.Size, ModTime: o.ModTime})
		}
		token = next
	}
	return out, nil
}

// DeleteObject removes key; an object already gone counts as removed.
func (s *Store) DeleteObject(ctx context.Context, key string) error {
	if err := s.delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %s: %w", key, cleanErr(err))
	}
	return nil
}
