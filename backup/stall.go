package backup

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"gocloud.dev/blob"
)

// DefaultStallTimeout is how long a bucket transfer may make no progress
// unless WithStallTimeout says otherwise.
const DefaultStallTimeout = time.Minute

// ErrStalled: a bucket transfer made no progress for the store's stall
// timeout and was aborted (nothing of an upload is visible).
var ErrStalled = errors.New("bucket stalled")

// StoreOption tunes a Store.
type StoreOption func(*Store) error

// WithStallTimeout fails a transfer to or from the bucket when one call
// into it (a read, a write, the commit of an upload) makes no progress for
// d. A multipart upload's write waits while a part is sent, so d must
// exceed the time one 8 MiB part takes on the slowest link expected.
func WithStallTimeout(d time.Duration) StoreOption {
	return func(s *Store) error {
		if d <= 0 {
			return inputErr(FieldStallTimeout, d.String(), "expected a positive duration")
		}
		s.stall = d
		return nil
	}
}

// cleanUp deletes key even when ctx ended, giving up after the stall
// timeout: what remains is an upload without a manifest, which retention
// removes.
func (s *Store) cleanUp(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.stall)
	defer cancel()
	s.bucket.Delete(ctx, key)
}

// request runs f, one short request to the bucket (a listing, a manifest,
// attributes, a delete), giving it the stall timeout to answer.
func (s *Store) request(ctx context.Context, f func(context.Context) error) error {
	stalled := fmt.Errorf("%w: no answer for %v", ErrStalled, s.stall)
	rctx, cancel := context.WithTimeoutCause(ctx, s.stall, stalled)
	defer cancel()
	err := f(rctx)
	if err != nil && context.Cause(rctx) == stalled {
		return stalled
	}
	return err
}

// stallWatch cancels a transfer's context when one call into the bucket
// blocks for longer than timeout; a nil *stallWatch watches nothing.
type stallWatch struct {
	timeout time.Duration
	timer   *time.Timer
	fired   atomic.Bool
}

// watch returns ctx with a stallWatch that cancels it; cancel releases it.
func (s *Store) watch(ctx context.Context) (context.Context, *stallWatch, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &stallWatch{timeout: s.stall}
	w.timer = time.AfterFunc(s.stall, func() {
		w.fired.Store(true)
		cancel(w.err())
	})
	w.timer.Stop()
	return ctx, w, func() { w.timer.Stop(); cancel(context.Canceled) }
}

// call runs f, a call into the bucket, within the timeout. Once the watch
// fired, every call returns its error.
func (w *stallWatch) call(f func() error) error {
	if w == nil {
		return f()
	}
	w.timer.Reset(w.timeout)
	err := f()
	w.timer.Stop()
	if w.fired.Load() {
		return w.err()
	}
	return err
}

// stalled returns the watch's error once it fired, else nil.
func (w *stallWatch) stalled() error {
	if w == nil || !w.fired.Load() {
		return nil
	}
	return w.err()
}

func (w *stallWatch) err() error {
	return fmt.Errorf("%w: no byte moved for %v", ErrStalled, w.timeout)
}

// watchedWriter writes to a bucket writer under a stallWatch.
type watchedWriter struct {
	w     *blob.Writer
	watch *stallWatch
}

func (ww watchedWriter) Write(p []byte) (n int, err error) {
	err = ww.watch.call(func() error {
		n, err = ww.w.Write(p)
		return err
	})
	if err != nil {
		err = &bucketWriteError{err}
	}
	return n, err
}

// bucketWriteError is a write to the bucket that failed, told apart from a
// failed read of what is uploaded.
type bucketWriteError struct{ err error }

func (e *bucketWriteError) Error() string { return e.err.Error() }
func (e *bucketWriteError) Unwrap() error { return e.err }

// Reader reads an object's bytes; Store.Open returns it. A read that
// makes no progress for the store's stall timeout fails with ErrStalled.
type Reader struct {
	r      *blob.Reader
	watch  *stallWatch
	cancel context.CancelFunc
}

func (r *Reader) Read(p []byte) (n int, err error) {
	err = r.watch.call(func() error {
		n, err = r.r.Read(p)
		return err
	})
	return n, err
}

// stalled returns an error wrapping ErrStalled once a read stalled.
func (r *Reader) stalled() error { return r.watch.stalled() }

// Size is the object's size.
func (r *Reader) Size() int64 { return r.r.Size() }

// Close releases the reader.
func (r *Reader) Close() error {
	defer r.cancel()
	return r.r.Close()
}
