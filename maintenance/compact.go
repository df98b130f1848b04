package maintenance

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/defrag"
	"github.com/etcdops/etcdops/health"
	"github.com/etcdops/etcdops/pitr"
)

// compact compacts the cluster's history up to the current revision less
// o.KeepRevisions, and never past the lowest revision that a running
// point-in-time log holds (pitr.CompactionBound): its watch must not be
// cancelled by our compaction. The compaction is physical: it returns once
// the member that serves it has removed the old revisions, so that the
// defragmentation that follows reclaims them.
//
// In a dry run it says what it would do.
func (r *runner) compact(ctx context.Context, statuses []defrag.MemberStatus) (string, int64, error) {
	cctx, cancel := context.WithTimeout(ctx, r.o.RequestTimeout)
	defer cancel()
	resp, err := r.conn.Get(cctx, pitr.HoldPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return "", 0, fmt.Errorf("compact: current revision: %w", err)
	}
	rev := resp.Header.Revision
	target := rev - r.o.KeepRevisions
	bound, held, err := pitr.CompactionBound(cctx, r.conn)
	if err != nil {
		return "", 0, fmt.Errorf("compact: %w", err)
	}
	detail := fmt.Sprintf("revision %d, keeping the last %d", rev, r.o.KeepRevisions)
	if held && bound < target {
		target = bound
		detail += fmt.Sprintf(", held at %d by a point-in-time log", bound)
	}
	switch {
	case target <= 1:
		return "nothing to compact: " + detail, 0, nil
	case r.o.DryRun:
		return fmt.Sprintf("would compact to %d: %s; the sizes below are before it", target, detail), 0, nil
	}
	var largest int64
	for _, s := range statuses {
		largest = max(largest, s.DBSize)
	}
	timeout := r.o.MemberTimeout
	if timeout == 0 {
		timeout = MemberTimeoutFor(largest)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if _, err := r.conn.Compact(pctx, target, clientv3.WithCompactPhysical()); err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			return fmt.Sprintf("already compacted past %d: %s", target, detail), 0, nil
		}
		return "", 0, fmt.Errorf("compact to %d: %w", target, err)
	}
	return fmt.Sprintf("compacted to %d: %s", target, detail), target, nil
}

// disarm disarms the NOSPACE alarms once every member is at or below its
// quota fraction, and says what it did; "" when no NOSPACE alarm is active.
func (r *runner) disarm(ctx context.Context) string {
	rep, err := r.check(ctx)
	if err != nil {
		return "NOSPACE alarms unknown: " + err.Error()
	}
	var nospace []uint64
	for _, a := range rep.Alarms {
		if a.Type == "NOSPACE" {
			nospace = append(nospace, a.MemberID)
		}
	}
	if len(nospace) == 0 {
		return ""
	}
	if !r.o.Disarm {
		return "NOSPACE alarm left active, as asked"
	}
	statuses, _ := r.statuses(rep)
	for _, d := range defrag.Decide(statuses, r.o.Rule) {
		switch {
		case d.Error != "":
			return fmt.Sprintf("NOSPACE alarm left active: member %s gave no status (%s)", d.Name, d.Error)
		case d.QuotaUsed > 0 && float64(d.DBSize) > r.o.Rule.QuotaFraction*float64(d.QuotaUsed):
			return fmt.Sprintf("NOSPACE alarm left active: member %s is still at %.0f%% of its quota", d.Name, float64(d.DBSize)*100/float64(d.QuotaUsed))
		}
	}
	var names []string
	for _, id := range nospace {
		_, err := r.conn.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: id, Alarm: etcdserverpb.AlarmType_NOSPACE})
		if err != nil {
			return fmt.Sprintf("NOSPACE alarm of member %s left active: disarm: %v", nameOf(rep.Members, id), err)
		}
		names = append(names, nameOf(rep.Members, id))
	}
	return "disarmed NOSPACE of " + strings.Join(names, ", ")
}

// CompactedKey is where a run that compacted records the revision it
// compacted to. Writing it after the compaction also makes every member
// commit, which is when etcd counts the pages the compaction freed: an
// idle member would otherwise report them in use.
const CompactedKey = "/etcdops/defrag/compacted"

// settleUnchanged is how long settle waits for the size in use of a member
// to fall after a compaction, before taking it that nothing was freed there.
const settleUnchanged = 10 * time.Second

// settle waits, after a compaction to rev, until every member reports the
// space it freed: members compact in the background, in batches, and count
// freed pages only at their next commit. It writes CompactedKey, then polls
// at intervals growing from 200ms to 2s until two reads in a row show the
// same sizes in use (within 1%) and every member's size in use has fallen
// since before the compaction — or settleUnchanged has passed, for a member
// the compaction freed nothing on —, within the time the largest member
// gets. Under a NOSPACE alarm the write fails and is left out.
func (r *runner) settle(ctx context.Context, statuses []defrag.MemberStatus, rev int64) (*health.Report, error) {
	var largest int64
	for _, s := range statuses {
		largest = max(largest, s.DBSize)
	}
	before := map[uint64]int64{}
	for _, s := range statuses {
		before[uint64(s.ID)] = s.DBSizeInUse
	}
	start := time.Now()
	deadline := start.Add(MemberTimeoutFor(largest))
	var last map[uint64]int64
	for wait := 200 * time.Millisecond; ; wait = min(wait*2, 2*time.Second) {
		pctx, cancel := context.WithTimeout(ctx, r.o.RequestTimeout)
		_, err := r.conn.Put(pctx, CompactedKey, strconv.FormatInt(rev, 10))
		cancel()
		if err != nil && !errors.Is(err, rpctypes.ErrNoSpace) {
			return nil, fmt.Errorf("record the compaction in %s: %w", CompactedKey, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		rep, err := r.check(ctx)
		if err != nil {
			return nil, err
		}
		inUse := map[uint64]int64{}
		stable := last != nil
		for _, e := range rep.Endpoints {
			inUse[e.MemberID] = e.DBSizeInUse
			if d := e.DBSizeInUse - last[e.MemberID]; d*100 > e.DBSize || -d*100 > e.DBSize {
				stable = false
			}
			// A member whose background compaction has not run yet looks
			// stable too: wait for its size in use to fall, for a while.
			if b, ok := before[e.MemberID]; ok && (b-e.DBSizeInUse)*100 <= b && time.Since(start) < settleUnchanged {
				stable = false
			}
		}
		if stable || time.Now().After(deadline) {
			return rep, nil
		}
		last = inUse
	}
}
