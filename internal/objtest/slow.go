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
	sb := &SlowBucket{}
	sb.URL = proxied(t, bucketURL, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
			sb.Uploading.Add(1)
			r.Body = &slowReader{r: r.Body, rate: bytesPerSecond, done: r.Context().Done()}
		}
		next.ServeHTTP(w, r)
	})
	return sb
}

// proxied puts the s3:// bucket at bucketURL behind a proxy whose handle
// sees each request before it passes it on to next, and returns the
// bucket's URL through the proxy. The proxy stops with the test.
func proxied(t testing.TB, bucketURL string, handle func(w http.ResponseWriter, r *http.Request, next http.Handler)) string {
	t.Helper()
	u, err := url.Parse(bucketURL)
	if err != nil || u.Scheme != "s3" {
		t.Fatalf("objtest: %q is not an s3:// bucket URL", bucketURL)
	}
	q := u.Query()
	target, err := url.Parse(q.Get("endpoint"))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target) // keeps the Host header the client signed
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handle(w, r, proxy) }))
	t.Cleanup(srv.Close)
	q.Set("endpoint", srv.URL)
	u.RawQuery = q.Encode()
	return u.String()
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

// Latent puts the s3:// bucket at bucketURL behind a proxy that waits rtt
// before forwarding each request: a bucket as far away as a remote object
// store's first-byte latency. It returns the bucket's URL through the
// proxy, which stops with the test.
func Latent(t testing.TB, bucketURL string, rtt time.Duration) string {
	t.Helper()
	return proxied(t, bucketURL, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		select {
		case <-time.After(rtt):
			next.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	})
}
