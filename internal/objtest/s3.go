package objtest

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MinIO's root credentials; the S3 clients use them as AWS access keys.
const (
	minioUser     = "objtest"
	minioPassword = "objtest-secret"
)

// S3 returns the s3:// backend, a MinIO server. Bucket URLs look like
//
//	s3://NAME?endpoint=http://127.0.0.1:PORT&use_path_style=true&region=us-east-1
//
// and Env holds AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
func S3(t testing.TB) Backend {
	t.Helper()
	srv := minioService.get(t)
	return Backend{Name: "s3", Env: slices.Clone(srv.env), newBucket: func(t testing.TB) string {
		t.Helper()
		name := bucketName(t)
		u := fmt.Sprintf("s3://%s?endpoint=http://%s&use_path_style=true&region=us-east-1", name, srv.addr)
		createBucket(t, u, func(ctx context.Context, c *s3.Client) error {
			_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name})
			return err
		})
		return u
	}}
}

func startMinIO() (*server, error) {
	path, err := tool("minio")
	if err != nil {
		return nil, err
	}
	srv, err := startServer(serverSpec{
		name: "minio",
		path: path,
		args: func(addr, dir string) []string {
			return []string{"server", "--quiet", "--address", addr,
				"--certs-dir", filepath.Join(dir, "certs"), filepath.Join(dir, "data")}
		},
		env: []string{
			"MINIO_ROOT_USER=" + minioUser,
			"MINIO_ROOT_PASSWORD=" + minioPassword,
			"MINIO_BROWSER=off", // no web console, which would listen on another port
			"MINIO_UPDATE=off",
		},
		stopSig: syscall.SIGTERM,
		ready: func(ctx context.Context, addr string) error {
			return httpOK(ctx, "http://"+addr+"/minio/health/ready")
		},
	})
	if err != nil {
		return nil, err
	}
	srv.env = []string{"AWS_ACCESS_KEY_ID=" + minioUser, "AWS_SECRET_ACCESS_KEY=" + minioPassword}
	return srv, nil
}

// httpOK returns nil if GET url answers 200 OK.
func httpOK(ctx context.Context, url string) error {
	code, err := httpStatus(ctx, url)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET %s: status %d", url, code)
	}
	return err
}

// httpStatus returns the status code of GET url.
func httpStatus(ctx context.Context, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
