package pitrtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Load runs Workload's mix at a fixed rate from several workers, each a
// Workload of its own seed (its own leases), through one client; one
// operation in twenty puts keys on a lease of 1 to 3 seconds that expires
// while the load goes on. The first failed operation stops it.
type Load struct {
	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ops    atomic.Int64

	mu   sync.Mutex
	err  error
	took time.Duration // from the start to the first Stop
}

// StartLoad starts rate operations a second over workers workers, seeded
// from seed, until Stop or the end of the test.
func StartLoad(t testing.TB, cli *clientv3.Client, seed uint64, rate, workers int) *Load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	l := &Load{start: start, cancel: cancel}
	var next atomic.Int64
	for i := range workers {
		w := NewWorkload(t, cli, seed+uint64(i))
		l.wg.Go(func() {
			timer := time.NewTimer(0)
			defer timer.Stop()
			for {
				// The n-th operation is due n/rate seconds after the start.
				due := start.Add(time.Duration(next.Add(1)) * time.Second / time.Duration(rate))
				timer.Reset(time.Until(due))
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
				var err error
				if w.rnd.IntN(20) == 0 {
					err = w.expiring(ctx, fmt.Sprint(i))
				} else {
					err = w.step(ctx)
				}
				if err != nil && strings.Contains(err.Error(), "requested lease not found") {
					// One of the worker's own long leases expired: the mix goes on without it.
					w.leases, err = w.leases[:0], nil
				}
				if err != nil {
					if ctx.Err() == nil {
						l.fail(fmt.Errorf("load worker %d: %w", i, err))
					}
					return
				}
				l.ops.Add(1)
			}
		})
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

func (l *Load) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
		l.cancel()
	}
}

// Ops returns the operations done so far.
func (l *Load) Ops() int64 { return l.ops.Load() }

// Rate returns the operations a second done so far, or until Stop.
func (l *Load) Rate() float64 {
	l.mu.Lock()
	took := l.took
	l.mu.Unlock()
	if took == 0 {
		took = time.Since(l.start)
	}
	return float64(l.ops.Load()) / took.Seconds()
}

// Err returns the error that stopped the load, nil while none did.
func (l *Load) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Stop stops the load, waits for the operations in flight and returns the
// first failure.
func (l *Load) Stop() error {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	if l.took == 0 {
		l.took = time.Since(l.start)
	}
	l.mu.Unlock()
	err := l.Err()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
