package pitr

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// holdTTL is the lease of a streamer's hold key: the hold goes this long
// after the streamer dies.
const holdTTL = 10 * time.Second

// hold is a streamer's key below HoldPrefix, on a lease it keeps alive.
type hold struct {
	cli     *clientv3.Client
	key     string
	timeout time.Duration
	lease   atomic.Int64 // 0 when none is alive
	stop    context.CancelFunc
	wg      sync.WaitGroup
	rev     int64     // the revision held; -1 before the first set
	at      time.Time // when it was last written
}

func newHold(cli *clientv3.Client, key string, timeout time.Duration) *hold {
	return &hold{cli: cli, key: key, timeout: timeout, rev: -1, stop: func() {}}
}

// set writes rev as the held revision, granting a lease first when the
// hold has none alive.
func (h *hold) set(ctx context.Context, rev int64) error {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	lease := clientv3.LeaseID(h.lease.Load())
	if lease == 0 {
		g, err := h.cli.Grant(ctx, int64(holdTTL.Seconds()))
		if err != nil {
			return fmt.Errorf("log hold %s: lease: %w", h.key, err)
		}
		h.stop()
		kctx, stop := context.WithCancel(context.Background())
		ka, err := h.cli.KeepAlive(kctx, g.ID)
		if err != nil {
			stop()
			return fmt.Errorf("log hold %s: keep-alive: %w", h.key, err)
		}
		lease, h.stop = g.ID, stop
		h.lease.Store(int64(lease))
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for range ka {
			}
			// The keep-alive ended (the lease expired, or release): the
			// next set grants another.
			h.lease.CompareAndSwap(int64(lease), 0)
		}()
	}
	if _, err := h.cli.Put(ctx, h.key, strconv.FormatInt(rev, 10), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("log hold %s: %w", h.key, err)
	}
	h.rev, h.at = rev, time.Now()
	return nil
}

// release removes the hold: its lease is revoked.
func (h *hold) release() {
	lease := clientv3.LeaseID(h.lease.Load())
	h.stop()
	h.wg.Wait()
	if lease == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	defer cancel()
	h.cli.Revoke(ctx, lease)
}
