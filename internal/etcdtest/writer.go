package etcdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	_ "google.golang.org/grpc/health" // the client side of HealthCheckDialOptions

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// WriterConfig says how fast, how long and through which client a Writer
// writes. Zero fields take the defaults in brackets.
type WriterConfig struct {
	// Rate is the writes per second [500].
	Rate int
	// Duration bounds the run: the writer stops by itself after it [60s].
	Duration time.Duration
	// Max bounds the number of writes [Rate × Duration].
	Max int
	// Timeout bounds each write [5s].
	Timeout time.Duration
	// Workers is the number of writes in flight at most [64].
	Workers int
	// AutoSync is the client's AutoSyncInterval, so it follows membership
	// changes as a real client does [500ms].
	AutoSync time.Duration
	// ValueSize pads each value to this many bytes [0: no padding].
	ValueSize int
	// TLS, when set, makes the client use https with this certificate.
	TLS *TLSFiles
	// Username and Password authenticate the client when set.
	Username, Password string
	// HealthCheck makes the client watch each member's gRPC health
	// service and send nothing to a member that reports NOT_SERVING
	// (etcd's StopGRPCServiceOnDefrag), as HealthCheckDialOptions says.
	HealthCheck bool
}

func (c *WriterConfig) setDefaults() {
	if c.Rate <= 0 {
		c.Rate = 500
	}
	if c.Duration <= 0 {
		c.Duration = 60 * time.Second
	}
	if c.Max <= 0 {
		c.Max = int(float64(c.Rate) * c.Duration.Seconds())
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 64
	}
	if c.AutoSync <= 0 {
		c.AutoSync = 500 * time.Millisecond
	}
}

// WriteFailure is one write that was not acknowledged.
type WriteFailure struct {
	Key  string
	Time time.Time
	Err  error
}

// WriterStats is what a Writer saw.
type WriterStats struct {
	// Sent counts writes issued; Acked and Failed split them by outcome.
	Sent, Acked, Failed int
	Failures            []WriteFailure
	// Elapsed is the time writes were issued, from the first to the stop.
	Elapsed time.Duration
	// MaxLatency is the slowest acknowledged write.
	MaxLatency time.Duration
	// MaxLag is the longest a write started after its time in the
	// schedule (all workers busy, or the writer starved of CPU).
	MaxLag time.Duration
	// Latencies are the acknowledged writes' latencies, in the order
	// they were acknowledged.
	Latencies []time.Duration
}

// Percentile returns the latency that the fraction p (0 to 1) of the
// acknowledged writes did not exceed, 0 without any.
func (s WriterStats) Percentile(p float64) time.Duration {
	if len(s.Latencies) == 0 {
		return 0
	}
	sorted := slices.Clone(s.Latencies)
	slices.Sort(sorted)
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Rate returns the writes issued per second over the run.
func (s WriterStats) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Sent) / s.Elapsed.Seconds()
}

func (s WriterStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d writes in %v (%.0f/s): %d acknowledged, %d failed, slowest ack %v, most behind schedule %v",
		s.Sent, s.Elapsed.Round(time.Millisecond), s.Rate(), s.Acked, s.Failed, s.MaxLatency.Round(time.Millisecond),
		s.MaxLag.Round(time.Millisecond))
	for i, f := range s.Failures {
		if i == 5 {
			fmt.Fprintf(&b, "\n  … %d more", len(s.Failures)-i)
			break
		}
		fmt.Fprintf(&b, "\n  %s at %s: %v", f.Key, f.Time.Format("15:04:05.000"), f.Err)
	}
	return b.String()
}

// Writer puts unique keys at a fixed rate through one client with
// AutoSyncInterval and records every acknowledged and every failed write.
type Writer struct {
	cfg    WriterConfig
	prefix string
	cli    *clientv3.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	acked map[string]string
	stats WriterStats
}

// StartWriter starts writing to the cluster at endpoints. It stops by itself
// after cfg.Duration or cfg.Max writes, or at Stop, and at the end of the test.
func StartWriter(t testing.TB, endpoints []string, cfg WriterConfig) *Writer {
	t.Helper()
	cfg.setDefaults()
	ccfg := clientConfig(t, endpoints, cfg.TLS, cfg.Username, cfg.Password, cfg.AutoSync)
	if cfg.HealthCheck {
		ccfg.DialOptions = append(ccfg.DialOptions, HealthCheckDialOptions()...)
	}
	cli, err := clientv3.New(ccfg)
	if err != nil {
		t.Fatalf("writer client of %v: %v", endpoints, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Writer{cfg: cfg, prefix: "/etcdtest-writer/" + randomHex(4) + "/", cli: cli, cancel: cancel,
		done: make(chan struct{}), acked: map[string]string{}}
	go w.run(ctx)
	t.Cleanup(func() { w.Stop() })
	return w
}

func (w *Writer) run(ctx context.Context) {
	defer close(w.done)
	defer w.cli.Close()
	start := time.Now()
	ctx, cancel := context.WithDeadline(ctx, start.Add(w.cfg.Duration))
	defer cancel()
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range w.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				w.put(i, start.Add(time.Duration(i)*time.Second/time.Duration(w.cfg.Rate)))
			}
		}()
	}
	timer := time.NewTimer(0)
dispatch:
	for i := 0; i < w.cfg.Max; i++ {
		timer.Reset(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(w.cfg.Rate))))
		select {
		case <-ctx.Done():
			break dispatch
		case <-timer.C:
		}
		select {
		case <-ctx.Done():
			break dispatch
		case jobs <- i:
		}
	}
	close(jobs)
	w.mu.Lock()
	w.stats.Elapsed = time.Since(start)
	w.mu.Unlock()
	wg.Wait()
}

func (w *Writer) put(i int, due time.Time) {
	key := fmt.Sprintf("%s%09d", w.prefix, i)
	value := fmt.Sprintf("%d", i)
	if pad := w.cfg.ValueSize - len(value); pad > 0 {
		value += "." + strings.Repeat("x", pad-1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
	defer cancel()
	begin := time.Now()
	_, err := w.cli.Put(ctx, key, value)
	took := time.Since(begin)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stats.Sent++
	w.stats.MaxLag = max(w.stats.MaxLag, begin.Sub(due))
	if err != nil {
		w.stats.Failed++
		w.stats.Failures = append(w.stats.Failures, WriteFailure{Key: key, Time: begin, Err: err})
		return
	}
	w.stats.Acked++
	w.acked[key] = value
	w.stats.MaxLatency = max(w.stats.MaxLatency, took)
	w.stats.Latencies = append(w.stats.Latencies, took)
}

// Done is closed when the writer has stopped, by itself or by Stop.
func (w *Writer) Done() <-chan struct{} { return w.done }

// Stats returns what the writer saw so far.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.Failures = append([]WriteFailure(nil), s.Failures...)
	s.Latencies = slices.Clone(s.Latencies)
	return s
}

// Stop stops the writer, waits for the writes in flight and returns the stats.
func (w *Writer) Stop() WriterStats {
	w.cancel()
	<-w.done
	return w.Stats()
}

// Wait waits until the writer stops by itself and returns the stats.
func (w *Writer) Wait(t testing.TB) WriterStats {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(w.cfg.Duration + w.cfg.Timeout + 10*time.Second):
		t.Fatalf("writer still running after %v", w.cfg.Duration+w.cfg.Timeout+10*time.Second)
	}
	return w.Stats()
}

// Verify reads the writer's keys through cli (linearizable) and returns a
// *LostWritesError naming the acknowledged writes that are missing or hold
// another value.
func (w *Writer) Verify(ctx context.Context, cli *clientv3.Client) error {
	found := map[string]string{}
	key, end := w.prefix, clientv3.GetPrefixRangeEnd(w.prefix)
	for {
		resp, err := cli.Get(ctx, key, clientv3.WithRange(end), clientv3.WithLimit(10000))
		if err != nil {
			return fmt.Errorf("read writer keys: %w", err)
		}
		for _, kv := range resp.Kvs {
			found[string(kv.Key)] = string(kv.Value)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var lost []string
	for k, v := range w.acked {
		if got, ok := found[k]; !ok {
			lost = append(lost, k+" missing")
		} else if got != v {
			lost = append(lost, fmt.Sprintf("%s = %.20q, want %.20q", k, got, v))
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		return &LostWritesError{Lost: lost, Acked: len(w.acked)}
	}
	return nil
}

// LostWritesError names the acknowledged writes that did not read back.
type LostWritesError struct {
	// Lost says for each lost write its key and what was read instead.
	Lost  []string
	Acked int
}

func (e *LostWritesError) Error() string {
	lost := e.Lost
	if len(lost) > 5 {
		lost = append(slices.Clone(lost[:5]), fmt.Sprintf("… %d more", len(lost)-5))
	}
	return fmt.Sprintf("%d of %d acknowledged writes lost: %s", len(e.Lost), e.Acked, strings.Join(lost, "; "))
}

// Check fails the test unless every acknowledged write reads back, through
// a client of endpoints, with its value.
func (w *Writer) Check(t testing.TB, endpoints []string) {
	t.Helper()
	cli, err := clientv3.New(clientConfig(t, endpoints, w.cfg.TLS, w.cfg.Username, w.cfg.Password, 0))
	if err != nil {
		t.Fatalf("client of %v: %v", endpoints, err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Verify(ctx, cli); err != nil {
		t.Fatal(err)
	}
}

// HealthCheckDialOptions make an etcd 3.6 client use gRPC health checking:
// its balancer (round_robin, set by the client's resolver without a
// healthCheckConfig) then sends no request to a member whose health service
// reports NOT_SERVING, as etcd's does during a defragmentation with the
// StopGRPCServiceOnDefrag feature gate. The resolver's service config is
// ignored for this default one; the health check itself is registered by
// importing google.golang.org/grpc/health, which clientv3 does not do
// (etcd's server packages, linked here, do).
func HealthCheckDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDisableServiceConfig(),
		grpc.WithDefaultServiceConfig(`{"loadBalancingPolicy":"round_robin","healthCheckConfig":{"serviceName":""}}`),
	}
}

// NewTLSClient is NewClient over https with a client certificate.
func NewTLSClient(t testing.TB, files *TLSFiles, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientConfig(t, endpoints, files, "", "", 0))
	if err != nil {
		t.Fatalf("client of %v: %v", endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func clientConfig(t testing.TB, endpoints []string, files *TLSFiles, user, password string, autoSync time.Duration) clientv3.Config {
	t.Helper()
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, AutoSyncInterval: autoSync,
		Username: user, Password: password, Logger: quietLogger()}
	if files != nil {
		info := transport.TLSInfo{CertFile: files.CertFile, KeyFile: files.KeyFile, TrustedCAFile: files.CAFile}
		tc, err := info.ClientConfig()
		if err != nil {
			t.Fatalf("client TLS: %v", err)
		}
		cfg.TLS = tc
	}
	return cfg
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
