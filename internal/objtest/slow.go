package objtest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// SlowBucket is a MinIO bucket behind a proxy that forwards request bodies
// (uploads) at a limited rate: a slow bucket, to hold an upload in flight.
type SlowBucket struct {
	// URL opens the bucket through the proxy.
	URL string
	// Uploading counts request bodies the proxy has started to forward.
	Uploading atomic.Int64
}

// Slow puts the s3:// bucket at bucketURL behind a proxy forwarding request
// bodies at about bytesPerSecond. The proxy stops with the test.
func Slow(t testing.TB, bucketURL string, bytesPerSecond int) *SlowBucket {
	t.Helper()
	u, err := url.Parse(bucketURL)
	if err != nil || u.Scheme != "s3" {
		t.Fatalf("objtest.Slow: %q is not an s3:// bucket URL", bucketURL)
	}
	q := u.Query()
	target, err := url.Parse(q.Get("endpoint"))
	if err != nil {
		t.Fatal(err)
	}
	sb := &SlowBucket{}
	proxy := httputil.NewSingleHostReverseProxy(target) // keeps the Host header the client signed
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
			sb.Uploading.Add(1)
			r.Body = &slowReader{r: r.Body, rate: bytesPerSecond, done: r.Context().Done()}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	q.Set("endpoint", srv.URL)
	u.RawQuery = q.Encode()
	sb.URL = u.String()
	return sb
}

// slowReader reads at most rate bytes a second, in tenths of a second.
type slowReader struct {
	r    io.ReadCloser
	rate int
	done <-chan struct{}
}

func (s *slowReader) Read(p []byte) (int, error) {
	if n := s.rate / 10; len(p) > n {
		p = p[:max(n, 1)]
	}
	select {
	case <-time.After(100 * time.Millisecond):
	case <-s.done:
		return 0, io.ErrUnexpectedEOF
	}
	return s.r.Read(p)
}

func (s *slowReader) Close() error { return s.r.Close() }
