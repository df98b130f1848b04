package pitrtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Compactor compacts a cluster as kube-apiserver does: every interval, to
// the revision it read one interval before, here the end of a log
// already in the bucket (bound), so that history is gone from etcd soon
// after it is logged.
type Compactor struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	last  int64
	count int
	err   error
}

// StartCompactor compacts through cli every interval to what bound
// returned at the tick before, until Stop or the end of the test.
func StartCompactor(t testing.TB, cli *clientv3.Client, every time.Duration, bound func(context.Context) (int64, error)) *Compactor {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Compactor{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		var seen int64
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if seen > c.Last() {
				if _, err := cli.Compact(ctx, seen); err != nil && ctx.Err() == nil {
					c.fail(fmt.Errorf("compact to %d: %w", seen, err))
					return
				}
				c.mu.Lock()
				c.last, c.count = seen, c.count+1
				c.mu.Unlock()
			}
			b, err := bound(ctx)
			if err != nil && ctx.Err() == nil {
				c.fail(fmt.Errorf("compaction bound: %w", err))
				return
			}
			seen = b
		}
	}()
	t.Cleanup(func() { c.Stop() })
	return c
}

func (c *Compactor) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

// Last returns the revision of the last compaction, 0 before the first.
func (c *Compactor) Last() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Count returns the compactions done so far.
func (c *Compactor) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}

// Stop stops compacting and returns how many compactions were done, and
// the error that stopped it early if any.
func (c *Compactor) Stop() (int, error) {
	c.cancel()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count, c.err
}
