package objtest

import (
	"context"
	"slices"
	"syscall"
	"testing"

	"cloud.google.com/go/storage"
)

// GCS returns the gs:// backend, a fake-gcs-server. Bucket URLs are plain
// gs://NAME; Env holds STORAGE_EMULATOR_HOST=127.0.0.1:PORT, which makes
// gcsblob use the emulator without credentials.
func GCS(t testing.TB) Backend {
	t.Helper()
	srv := fakeGCSService.get(t)
	return Backend{Name: "gs", Env: slices.Clone(srv.env), newBucket: func(t testing.TB) string {
		t.Helper()
		name := bucketName(t)
		u := "gs://" + name
		createBucket(t, u, func(ctx context.Context, c *storage.Client) error {
			return c.Bucket(name).Create(ctx, "objtest", nil)
		})
		return u
	}}
}

func startFakeGCS() (*server, error) {
	path, err := tool("fake-gcs-server")
	if err != nil {
		return nil, err
	}
	srv, err := startServer(serverSpec{
		name: "fake-gcs-server",
		path: path,
		args: func(addr, dir string) []string {
			return []string{"-scheme", "http", "-host", "127.0.0.1", "-port", portOf(addr),
				// A public host without a port: requests through a test's
				// proxy (another port) still reach the object routes.
				"-public-host", "127.0.0.1", "-external-url", "http://" + addr,
				"-backend", "filesystem", "-filesystem-root", dir, "-log-level", "warn"}
		},
		stopSig: syscall.SIGTERM,
		ready: func(ctx context.Context, addr string) error {
			return httpOK(ctx, "http://"+addr+"/storage/v1/b")
		},
	})
	if err != nil {
		return nil, err
	}
	srv.env = []string{"STORAGE_EMULATOR_HOST=" + srv.addr}
	return srv, nil
}
