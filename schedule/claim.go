package schedule

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/backup"
)

// ClaimPrefix is where the members of a cluster that schedule their own
// backups (serve --backup-cron) claim each slot: the key
// <ClaimPrefix><tag>/<slot as YYYY-MM-DD_HH-MM-SS> is created, once, by
// the member that takes that slot's snapshot, with a lease that removes it
// some time after the slot.
const ClaimPrefix = "/etcdops/backup/slots/"

// Claimer decides, through etcd, which member takes a slot's snapshot.
// Claiming is a transaction that creates the slot's key only if it does
// not exist: raft orders the members' transactions, so exactly one wins,
// and a member without quorum cannot win at all.
type Claimer struct {
	KV    clientv3.KV
	Lease clientv3.Lease
	// Member is written as the key's value: who took the slot.
	Member string
	// TTL is how long a claim lasts; it must outlast the latest member's
	// attempt at the slot.
	TTL time.Duration
	// Timeout bounds each request.
	Timeout time.Duration
}

// ClaimKey is the key claiming the slot at of tag.
func ClaimKey(tag string, at time.Time) string {
	return ClaimPrefix + tag + "/" + at.UTC().Format(backup.TimeLayout)
}

// Claim reports whether this member won the slot at of tag. An error
// (no quorum, a timeout) means it did not.
func (c *Claimer) Claim(ctx context.Context, tag string, at time.Time) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	lease, err := c.Lease.Grant(ctx, int64(c.TTL.Seconds()))
	if err != nil {
		return false, fmt.Errorf("claim slot %s: lease: %w", at.UTC().Format(time.RFC3339), err)
	}
	key := ClaimKey(tag, at)
	resp, err := c.KV.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, c.Member, clientv3.WithLease(lease.ID))).
		Commit()
	if err != nil || !resp.Succeeded {
		c.Lease.Revoke(context.WithoutCancel(ctx), lease.ID)
	}
	if err != nil {
		return false, fmt.Errorf("claim %s: %w", key, err)
	}
	return resp.Succeeded, nil
}

// ClaimTTL is how long a claim of a slot of spec lasts: an interval, and
// at least a minute, so that a member whose schedule fires late still
// finds the claim.
func ClaimTTL(spec Spec, now time.Time) time.Duration {
	return max(spec.Interval(now), time.Minute)
}
