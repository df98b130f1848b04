package maintenance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcdops/etcdops/defrag"
	"github.com/etcdops/etcdops/internal/etcdclient"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/pitr"
)

const mib = 1 << 20

// grow writes n values of size bytes below prefix and deletes them again,
// and writes 20 revisions more, so that the members' files grow and, once
// compacted, hold mostly free pages; it returns the revision after the writes.
func grow(t *testing.T, cli *clientv3.Client, prefix string, n, size int) (int64, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	value := strings.Repeat("x", size)
	var rev int64
	var err error
	for i := 0; i < n && err == nil; i++ {
		var resp *clientv3.PutResponse
		if resp, err = cli.Put(ctx, fmt.Sprintf("%s%06d", prefix, i), value); err == nil {
			rev = resp.Header.Revision
		}
	}
	if _, derr := cli.Delete(ctx, prefix, clientv3.WithPrefix()); derr != nil {
		t.Fatal(derr)
	}
	if err != nil {
		return rev, err
	}
	// A compaction that keeps the last revisions must reach past the delete.
	for i := range 20 {
		if _, err := cli.Put(ctx, prefix+"pad", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	return rev, err
}

func options(c *etcdtest.EmbeddedCluster) Options {
	rule := defrag.DefaultRule()
	rule.MinFree = 4 * mib
	return Options{Client: etcdclient.Config{Endpoints: c.Endpoints()[:1], DialTimeout: 5 * time.Second},
		RequestTimeout: 5 * time.Second, Rule: rule, Disarm: true, KeepRevisions: DefaultKeepRevisions}
}

type sizes map[string]int64

// status returns each member's database size and the leader's term.
func status(t *testing.T, c *etcdtest.EmbeddedCluster) (sizes, string, uint64) {
	t.Helper()
	cli := c.Client()
	out := sizes{}
	var leader string
	var term uint64
	for _, m := range c.Members {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := cli.Status(ctx, m.Spec.ClientURL)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		out[m.Spec.Name] = st.DbSize
		term = max(term, st.RaftTerm)
		if st.Leader == st.Header.MemberId {
			leader = m.Spec.Name
		}
	}
	return out, leader, term
}

func TestRunDefragmentsFollowersThenTheLeader(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 3)
	if _, err := grow(t, c.Client(), "/big/", 400, 64<<10); err != nil {
		t.Fatal(err)
	}
	before, leader, term := status(t, c)

	o := options(c)
	o.DryRun = true
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	after, _, _ := status(t, c)
	for name, b := range before {
		if after[name] < b || len(res.Members) != 0 {
			t.Errorf("dry run shrank %s from %d to %d bytes, or ran: %+v", name, b, after[name], res.Members)
		}
	}
	if _, err := c.Client().Get(context.Background(), "/big/000001", clientv3.WithRev(3)); err != nil {
		t.Errorf("dry run compacted: %v", err)
	}
	if len(res.Plan) != 3 || res.Plan[2].Name != leader {
		t.Fatalf("plan %+v: want 3 members, the leader %s last", res.Plan, leader)
	}
	for _, d := range res.Plan {
		if d.Defrag {
			t.Errorf("before compaction %s has %d of %d bytes in use, yet the plan defragments it: %s", d.Name, d.DBSizeInUse, d.DBSize, d.Reason)
		}
	}

	o = options(c)
	o.Compact, o.KeepRevisions = true, 10
	var events []string
	o.Events = func(ev Event) { events = append(events, ev.Event+" "+ev.Member) }
	// A slow writer, as a live cluster has: members count the pages a
	// compaction freed as they commit.
	w := etcdtest.StartWriter(t, c.Endpoints(), etcdtest.WriterConfig{Rate: 20, Duration: time.Minute})
	res, err = Run(context.Background(), o)
	if err != nil {
		t.Fatalf("run: %v (%+v)", err, res)
	}
	ws := w.Stop()
	if ws.Failed > 1 {
		t.Errorf("writer: %v", ws)
	}
	after, newLeader, newTerm := status(t, c)
	t.Logf("sizes %v -> %v, events %q, %s", before, after, events, res.Compaction)
	for name, b := range before {
		if after[name] > b/2 {
			t.Errorf("member %s: %d bytes before, %d after: want less than half", name, b, after[name])
		}
	}
	if len(res.Members) != 3 || res.Members[2].Name != leader || res.Members[2].Outcome != OutcomeDefragmented {
		t.Errorf("members %+v: want all three defragmented, the leader %s last", res.Members, leader)
	}
	if newLeader == leader || newTerm != term+1 {
		t.Errorf("leader %s (term %d) after the run, %s (term %d) before: want leadership moved once", newLeader, newTerm, leader, term)
	}
	if res.Reclaimed <= 0 || !strings.HasPrefix(res.Compaction, "compacted to") {
		t.Errorf("reclaimed %d, compaction %q", res.Reclaimed, res.Compaction)
	}
	if i := strings.Index(strings.Join(events, ","), "move-leader "+leader); i < 0 {
		t.Errorf("events %q: no leadership move from %s", events, leader)
	}

	// Nothing left to reclaim: the default rule skips every member.
	res, err = Run(context.Background(), options(c))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res.Members {
		if m.Outcome != OutcomeSkipped {
			t.Errorf("rerun: %s %s: %s", m.Name, m.Outcome, m.Reason)
		}
	}
}

func TestRunStopsAtAnUnhealthyCluster(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 3)
	before, _, _ := status(t, c)
	c.Members[2].Stop()
	o := options(c)
	o.Rule.All = true
	res, err := Run(context.Background(), o)
	var me *MemberError
	if !errors.As(err, &me) || me.Step != "gate" || !strings.Contains(me.Seen, "member "+c.Members[2].Spec.Name+" is unreachable") {
		t.Fatalf("run with a member down: %v, want a gate error naming it", err)
	}
	for _, m := range res.Members {
		if m.Outcome == OutcomeDefragmented {
			t.Errorf("member %s defragmented with %s down", m.Name, c.Members[2].Spec.Name)
		}
	}
	c.Members[2].Restart(t)
	after, _, _ := status(t, c)
	for name, size := range after {
		// A restarted member may commit (and grow) as it catches up; a
		// defragmented one would shrink.
		if size < before[name] {
			t.Errorf("%s shrank from %d to %d bytes: sizes %v to %v", name, before[name], size, before, after)
		}
	}
}

// TestCompactStopsAtTheLogHold: a point-in-time log holds revision h; the
// compaction keeps h and what follows, so that the log's watch from h goes on.
func TestCompactStopsAtTheLogHold(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	cli := c.Client()
	ctx := context.Background()
	var hold int64
	for i := range 50 {
		resp, err := cli.Put(ctx, "k", fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		if i == 20 {
			hold = resp.Header.Revision
		}
	}
	if _, err := cli.Put(ctx, pitr.HoldPrefix+"tag/x", fmt.Sprint(hold)); err != nil {
		t.Fatal(err)
	}
	o := options(c)
	o.Compact, o.KeepRevisions = true, 5
	res, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.CompactedTo != hold || !strings.Contains(res.Compaction, "held at") {
		t.Errorf("compacted to %d (%s), want the hold %d", res.CompactedTo, res.Compaction, hold)
	}
	if _, err := cli.Get(ctx, "k", clientv3.WithRev(hold)); err != nil {
		t.Errorf("read at the held revision %d: %v", hold, err)
	}
	if _, err := cli.Get(ctx, "k", clientv3.WithRev(hold-1)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("read below the held revision: %v, want compacted", err)
	}
	// Again: the hold is where the last compaction stopped; already done.
	if res, err = Run(ctx, o); err != nil || res.CompactedTo != 0 {
		t.Errorf("rerun: compacted to %d, %v (%s)", res.CompactedTo, err, res.Compaction)
	}
}

// TestRunDisarmsNospace: a cluster over its quota raises NOSPACE; once
// compaction and defragmentation bring every member under the quota
// fraction, the alarm is disarmed and writes work again.
func TestRunDisarmsNospace(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 3, func(cfg *embed.Config) { cfg.QuotaBackendBytes = 16 * mib })
	cli := c.Client()
	if _, err := grow(t, cli, "/full/", 1000, 64<<10); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("filling the quota: %v, want no space", err)
	}
	o := options(c)
	o.Compact, o.KeepRevisions = true, 0
	for _, disarm := range []bool{false, true} {
		o.Disarm = disarm
		res, err := Run(context.Background(), o)
		if err != nil {
			t.Fatalf("run: %v (%+v)", err, res)
		}
		t.Logf("disarm %v: %s; members %+v", disarm, res.Disarm, res.Members)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cli.Put(ctx, "after", "x")
		cancel()
		if disarm != (err == nil) || !disarm && !errors.Is(err, rpctypes.ErrNoSpace) {
			t.Errorf("disarm %v: put after the run: %v (%s)", disarm, err, res.Disarm)
		}
	}
}

// TestRunSkipsALearner: etcd refuses Defragment on a learner (checked here
// against the member itself), so the run skips it with that reason and
// defragments the voters.
func TestRunSkipsALearner(t *testing.T) {
	specs := etcdtest.SpecsNamed(t, t.TempDir(), "m0", "m1", "m2", "l")
	voters := strings.Join(strings.Split(specs[0].InitialCluster, ",")[:3], ",")
	for i := range 3 {
		specs[i].InitialCluster = voters
	}
	c := etcdtest.StartEmbeddedSpecs(t, specs[:3])
	ctx := context.Background()
	// etcd refuses a new member until its members have been connected a while.
	etcdtest.Eventually(t, 30*time.Second, func() error {
		_, err := c.Client().MemberAddAsLearner(ctx, []string{specs[3].PeerURL})
		return err
	})
	specs[3].ClusterState = "existing"
	learner := etcdtest.StartEmbeddedSpecs(t, specs[3:])
	lcli := etcdtest.NewClient(t, learner.Endpoints()...)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := lcli.Defragment(dctx, specs[3].ClientURL)
	cancel()
	if !errors.Is(err, rpctypes.ErrGRPCNotSupportedForLearner) && !strings.Contains(fmt.Sprint(err), "rpc not supported for learner") {
		t.Fatalf("defragment a learner: %v, want etcd to refuse it", err)
	}

	o := options(c)
	o.Rule.All = true
	res, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("run: %v (%+v)", err, res)
	}
	outcomes := map[string]string{}
	for _, m := range res.Members {
		outcomes[m.Name] = m.Outcome + ": " + m.Reason
	}
	if outcomes["l"] != OutcomeSkipped+": "+defrag.ReasonLearner || len(res.Members) != 4 {
		t.Errorf("outcomes %v: want the learner skipped as a learner", outcomes)
	}
	for _, n := range []string{"m0", "m1", "m2"} {
		if !strings.HasPrefix(outcomes[n], OutcomeDefragmented) {
			t.Errorf("voter %s: %s", n, outcomes[n])
		}
	}
}
