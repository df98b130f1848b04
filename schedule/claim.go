package schedule

import (
	"context"
	"fmt"
	"strings"
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
	// Prefix is where the claims are: ClaimPrefix (backups) when empty,
	// DefragClaimPrefix for rolling defrags.
	Prefix string
	KV     clientv3.KV
	Lease  clientv3.Lease
	// Member is written as the key's value: who took the slot.
	Member string
	// TTL is how long a claim lasts; it must outlast the latest member's
	// attempt at the slot.
	TTL time.Duration
	// Timeout bounds each request.
	Timeout time.Duration
}

// ClaimFunc decides whether this process takes the slot at of tag (a
// Claimer's Claim, as a job's Claim).
type ClaimFunc func(ctx context.Context, tag string, at time.Time) (bool, error)

// ClaimKey is the key claiming the slot at of tag.
func ClaimKey(tag string, at time.Time) string {
	return ClaimPrefix + tag + "/" + at.UTC().Format(backup.TimeLayout)
}

// claimRetry is how soon a claim that failed (no leader yet) is retried;
// claimAttempt bounds one attempt, so that a request stuck with a leader
// that died is given up for one that a new leader can answer.
const (
	claimRetry   = 100 * time.Millisecond
	claimAttempt = time.Second
)

// Claim reports whether this member won the slot at of tag. Failures
// (an election in progress) are retried until Timeout; an error then
// (no quorum) means it did not win. A claim whose reply was lost is
// recognised as won on the retry, by the member name it wrote.
func (c *Claimer) Claim(ctx context.Context, tag string, at time.Time) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	key := ClaimKey(tag, at)
	if c.Prefix != "" {
		key = c.Prefix + strings.TrimPrefix(key, ClaimPrefix)
	}
	var lease *clientv3.LeaseGrantResponse
	var err error
	for {
		if lease == nil {
			actx, acancel := context.WithTimeout(ctx, claimAttempt)
			lease, err = c.Lease.Grant(actx, int64(c.TTL.Seconds()))
			acancel()
			if err != nil {
				lease = nil
				err = fmt.Errorf("claim %s: lease: %w", key, err)
			}
		}
		if lease != nil {
			var resp *clientv3.TxnResponse
			actx, acancel := context.WithTimeout(ctx, claimAttempt)
			resp, err = c.KV.Txn(actx).
				If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
				Then(clientv3.OpPut(key, c.Member, clientv3.WithLease(lease.ID))).
				Else(clientv3.OpGet(key)).
				Commit()
			acancel()
			if err == nil {
				won := resp.Succeeded
				if !won {
					kvs := resp.Responses[0].GetResponseRange().Kvs
					won = len(kvs) == 1 && string(kvs[0].Value) == c.Member && kvs[0].Lease == int64(lease.ID)
				}
				if !won {
					c.revoke(ctx, lease.ID)
				}
				return won, nil
			}
			err = fmt.Errorf("claim %s: %w", key, err)
		}
		select {
		case <-ctx.Done():
			return false, err
		case <-time.After(claimRetry):
		}
	}
}

// revoke gives back the lease of a claim that lost, for at most
// claimAttempt, even once ctx ended (the lease would otherwise outlive the
// slot by its TTL). A member that stops or has lost quorum does not answer:
// the lease then expires by itself, and shutdown does not wait.
func (c *Claimer) revoke(ctx context.Context, id clientv3.LeaseID) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimAttempt)
	defer cancel()
	c.Lease.Revoke(rctx, id)
}

// ClaimTTL is how long a claim of a slot of spec lasts: an interval, and
// at least a minute, so that a member whose schedule fires late still
// finds the claim.
func ClaimTTL(spec Spec, now time.Time) time.Duration {
	return max(spec.Interval(now), time.Minute)
}
