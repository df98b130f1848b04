package pitrtest

import (
	"bytes"
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// State is a cluster's whole keyspace at one revision.
type State struct {
	Rev int64
	Kvs []*mvccpb.KeyValue
}

// ReadState reads every key of the member of cli at rev; rev 0 reads the
// current revision, which the returned State then names.
func ReadState(ctx context.Context, cli *clientv3.Client, rev int64) (State, error) {
	opts := []clientv3.OpOption{clientv3.WithFromKey()}
	if rev != 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := cli.Get(ctx, "\x00", opts...)
	if err != nil {
		return State{}, fmt.Errorf("read the keyspace at revision %d: %w", rev, err)
	}
	if rev == 0 {
		rev = resp.Header.Revision
	}
	return State{Rev: rev, Kvs: resp.Kvs}, nil
}

// SameState says how got differs from want, key by key: the key, its
// value, create and mod revision, version and lease; nil when it does not.
func SameState(got, want State) error {
	if got.Rev != want.Rev {
		return fmt.Errorf("revision %d, expected %d", got.Rev, want.Rev)
	}
	for i := 0; i < max(len(got.Kvs), len(want.Kvs)); i++ {
		switch {
		case i == len(got.Kvs):
			return fmt.Errorf("revision %d: %d keys, expected %d: %s is missing", got.Rev, len(got.Kvs), len(want.Kvs), want.Kvs[i].Key)
		case i == len(want.Kvs):
			return fmt.Errorf("revision %d: %d keys, expected %d: %s is extra", got.Rev, len(got.Kvs), len(want.Kvs), got.Kvs[i].Key)
		}
		g, w := got.Kvs[i], want.Kvs[i]
		if !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || g.CreateRevision != w.CreateRevision ||
			g.ModRevision != w.ModRevision || g.Version != w.Version || g.Lease != w.Lease {
			return fmt.Errorf("revision %d: %s (%d bytes) c%d m%d v%d lease %x, expected %s (%d bytes) c%d m%d v%d lease %x", got.Rev,
				g.Key, len(g.Value), g.CreateRevision, g.ModRevision, g.Version, g.Lease, w.Key, len(w.Value), w.CreateRevision, w.ModRevision, w.Version, w.Lease)
		}
	}
	return nil
}

// CheckLeases checks that the member of cli holds the lease of every key
// of s: alive, or expired since and gone with its keys (a restored member
// grants its leases their whole TTL again when it starts, and a short one
// may run out before the check).
func CheckLeases(ctx context.Context, cli *clientv3.Client, s State) error {
	seen := map[int64]bool{}
	for _, kv := range s.Kvs {
		if kv.Lease == 0 || seen[kv.Lease] {
			continue
		}
		seen[kv.Lease] = true
		ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
		if err != nil {
			return fmt.Errorf("key %s: lease %x: %w", kv.Key, kv.Lease, err)
		}
		if ttl.TTL > 0 {
			continue
		}
		now, err := cli.Get(ctx, string(kv.Key))
		if err != nil {
			return err
		}
		if len(now.Kvs) > 0 && now.Kvs[0].Lease == kv.Lease {
			return fmt.Errorf("key %s: lease %x is not alive (TTL %d), yet the key is still on it", kv.Key, kv.Lease, ttl.TTL)
		}
	}
	return nil
}
