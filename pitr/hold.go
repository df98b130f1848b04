// Package pitr is etcdops' point-in-time recovery: a continuous log of a
// cluster's changes between snapshots, and the replay of it to any revision.
//
// A tag's log is stored beside its snapshots, below <tag>_log/: segments
// named by their first and last revision (the format is in segment.go),
// and gap records where the log could not go on (see LogSuffix).
package pitr

import (
	"context"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// HoldPrefix is where every running log streamer of a cluster says how far
// its log is flushed: a key below HoldPrefix+<tag>/, on the streamer's
// lease (so it goes when the streamer dies), whose value is the decimal
// revision through which every change is in the bucket. Compaction by
// etcdops (defrag --compact) never passes the lowest such revision, so a
// streamer's watch is never cancelled by our own compaction.
const HoldPrefix = "/etcdops/pitr/hold/"

// CompactionBound returns the lowest revision held below HoldPrefix, and
// false when no streamer holds one.
func CompactionBound(ctx context.Context, kv clientv3.KV) (rev int64, held bool, err error) {
	resp, err := kv.Get(ctx, HoldPrefix, clientv3.WithPrefix())
	if err != nil {
		return 0, false, fmt.Errorf("read log holds: %w", err)
	}
	for _, h := range resp.Kvs {
		r, err := strconv.ParseInt(string(h.Value), 10, 64)
		if err != nil || r < 0 {
			return 0, false, fmt.Errorf("read log holds: %s holds %q, not a revision", h.Key, h.Value)
		}
		if !held || r < rev {
			rev, held = r, true
		}
	}
	return rev, held, nil
}
