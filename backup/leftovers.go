package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"
)

// removeLeftovers removes what saves that were killed, or lost their
// bucket, left where no snapshot shows: fileblob's temporary files
// (<object>.<hex>.tmp) in a file:// bucket and unfinished S3 multipart
// uploads. It touches only leftovers of snapshots older than the newest
// complete snapshot of their tag (in snaps), so that a save still running
// is never disturbed. Google Cloud Storage and Azure drop unfinished
// uploads by themselves (after a week).
func (s *Store) removeLeftovers(ctx context.Context, snaps []Snapshot, lg *zap.Logger) error {
	newest := map[string]time.Time{}
	for _, sn := range snaps {
		if sn.Complete() && sn.Name.Time.After(newest[sn.Name.Tag]) {
			newest[sn.Name.Tag] = sn.Name.Time
		}
	}
	stale := func(key string) bool {
		key = strings.TrimSuffix(key, ManifestExt)
		n, ok := ParseName(key)
		return ok && n.Time.Before(newest[n.Tag])
	}
	var errs []error
	if s.scheme == "file" {
		errs = append(errs, s.removeTempFiles(ctx, stale, lg))
	}
	var client *s3.Client
	if s.bucket.As(&client) {
		errs = append(errs, s.abortUploads(ctx, client, stale, lg))
	}
	return errors.Join(errs...)
}

// removeTempFiles removes fileblob's temporary files of stale objects.
func (s *Store) removeTempFiles(ctx context.Context, stale func(string) bool, lg *zap.Logger) error {
	it := s.bucket.List(nil)
	for {
		obj, err := it.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("list %s: %w", s.URL, cleanErr(err))
		}
		base, ok := strings.CutSuffix(obj.Key, ".tmp")
		if i := strings.LastIndexByte(base, '.'); !ok || i < 0 || !stale(base[:i]) {
			continue
		}
		if err := s.delete(ctx, obj.Key); err != nil {
			return fmt.Errorf("delete %s: %w", obj.Key, cleanErr(err))
		}
		lg.Info("removed the temporary file of an unfinished save", zap.String("name", obj.Key))
	}
}

// abortUploads aborts the unfinished multipart uploads of stale objects.
func (s *Store) abortUploads(ctx context.Context, client *s3.Client, stale func(string) bool, lg *zap.Logger) error {
	u, err := url.Parse(s.URL)
	if err != nil {
		return err
	}
	bucket, prefix := u.Host, u.Query().Get("prefix")
	in := &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &prefix}
	for {
		var out *s3.ListMultipartUploadsOutput
		err := s.request(ctx, func(ctx context.Context) (err error) {
			out, err = client.ListMultipartUploads(ctx, in)
			return err
		})
		if err != nil {
			return fmt.Errorf("list the unfinished uploads in %s: %w", s.URL, cleanErr(err))
		}
		for _, up := range out.Uploads {
			if up.Key == nil || !stale(strings.TrimPrefix(*up.Key, prefix)) {
				continue
			}
			err := s.request(ctx, func(ctx context.Context) error {
				_, err := client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: up.Key, UploadId: up.UploadId})
				return err
			})
			if err != nil {
				return fmt.Errorf("abort the unfinished upload of %s: %w", *up.Key, cleanErr(err))
			}
			lg.Info("aborted the unfinished upload of a save", zap.String("name", strings.TrimPrefix(*up.Key, prefix)))
		}
		if out.IsTruncated == nil || !*out.IsTruncated {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}
