package objtest

import (
	"context"
	"net"
	"testing"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob://
	_ "gocloud.dev/blob/fileblob"  // file://
	_ "gocloud.dev/blob/gcsblob"   // gs://
	_ "gocloud.dev/blob/memblob"   // mem://
	_ "gocloud.dev/blob/s3blob"    // s3://
)

// createBucket opens bucketURL and creates its bucket with the driver's own
// client, C (*s3.Client, *storage.Client or *container.Client).
func createBucket[C any](t testing.TB, bucketURL string, create func(context.Context, C) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		t.Fatalf("objtest: %v", err)
	}
	defer b.Close()
	var c C
	if !b.As(&c) {
		t.Fatalf("objtest: open %s: the bucket is not a %T", bucketURL, c)
	}
	if err := create(ctx, c); err != nil {
		t.Fatalf("objtest: create bucket %s: %v", bucketURL, err)
	}
}

// portOf returns the port of a host:port address.
func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}
