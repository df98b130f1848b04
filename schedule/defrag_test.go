package schedule

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/defrag"
	"github.com/etcdops/etcdops/internal/etcdclient"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/maintenance"
)

func TestDefragJobsConfig(t *testing.T) {
	base := maintenance.Options{Client: etcdclient.Config{Endpoints: []string{"http://127.0.0.1:1"}}, RequestTimeout: time.Second}
	frac := func(f float64) *float64 { return &f }
	keep := int64(100)
	jobs, err := DefragJobs([]JobConfig{
		{Name: "backup-only", Cron: "@hourly", To: "mem://"},
		{Name: "both", Cron: "@hourly", To: "mem://", DefragCron: "@daily", Compact: true, CompactKeepRevisions: &keep, MinFree: "1MiB", QuotaFraction: frac(0.5)},
		{Name: "all", DefragCron: "0 3 * * 0", All: true, NoDisarm: true},
	}, base)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].Name != "both" || jobs[1].Name != "all" {
		t.Fatalf("jobs %+v", jobs)
	}
	want := defrag.DefaultRule()
	want.MinFree, want.QuotaFraction = 1<<20, 0.5
	if o := jobs[0].Options; o.Rule != want || !o.Compact || o.KeepRevisions != 100 || !o.Disarm || o.Client.Endpoints[0] != "http://127.0.0.1:1" {
		t.Errorf("both: %+v", o)
	}
	if o := jobs[1].Options; !o.Rule.All || o.Compact || o.KeepRevisions != maintenance.DefaultKeepRevisions || o.Disarm {
		t.Errorf("all: %+v", o)
	}
	// A defrag-only job is no backup job.
	bjobs, err := Jobs([]JobConfig{{Name: "all", DefragCron: "@daily"}, {Name: "b", Cron: "@hourly", To: "mem://"}}, backup.SaveConfig{Endpoints: []string{"http://127.0.0.1:2379"}})
	if err != nil || len(bjobs) != 1 || bjobs[0].Name != "b" {
		t.Errorf("Jobs: %v %v", bjobs, err)
	}

	for _, tc := range []struct {
		jc   JobConfig
		want string
	}{
		{JobConfig{Name: "x", DefragCron: "0 0 30 2 *"}, `job "x": defrag-cron: cron spec "0 0 30 2 *": no run in the next five years`},
		{JobConfig{Name: "x", Compact: true}, `job "x": compact: given without defrag-cron`},
		{JobConfig{Name: "x", DefragCron: "@daily", All: true, MinFreeFraction: frac(0.2)}, `job "x": all: given with min-free-fraction`},
		{JobConfig{Name: "x", DefragCron: "@daily", MinFreeFraction: frac(1.5)}, `job "x": min-free-fraction: 1.5: expected a fraction in (0,1]`},
		{JobConfig{Name: "x", DefragCron: "@daily", MinFree: "-1"}, `job "x": min-free: "-1": expected a size of 0 or more`},
		{JobConfig{Name: "x", DefragCron: "@daily", CompactKeepRevisions: &keep}, `job "x": compact-keep-revisions: given without compact`},
	} {
		_, err := DefragJobs([]JobConfig{tc.jc}, base)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.jc, err, tc.want)
		}
	}
}

// TestScheduledDefragShrinksAndNeverOverlaps: while another process holds
// the cluster's defrag lock, slots are skipped and nothing is touched;
// once it is free, a slot compacts and defragments every member, and the
// metrics say so. A job whose cluster is unreachable counts failures.
func TestScheduledDefragShrinksAndNeverOverlaps(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 3)
	cli := c.Client()
	ctx := context.Background()
	value := strings.Repeat("x", 64<<10)
	for i := range 256 {
		if _, err := cli.Put(ctx, fmt.Sprintf("/big/%04d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(ctx, "/big/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		etcdtest.Put(t, cli, "/pad", fmt.Sprint(i))
	}
	sizes := func() map[string]int64 {
		out := map[string]int64{}
		for _, m := range c.Members {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := cli.Status(sctx, m.Spec.ClientURL)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			out[m.Spec.Name] = st.DbSize
		}
		return out
	}
	before := sizes()

	base := maintenance.Options{Client: etcdclient.Config{Endpoints: c.Endpoints()[:1], DialTimeout: 2 * time.Second}, RequestTimeout: 2 * time.Second}
	keep := int64(10)
	jobs, err := DefragJobs([]JobConfig{
		{Name: "shrink", DefragCron: "@every 1s", MinFree: "1MiB", Compact: true, CompactKeepRevisions: &keep},
		{Name: "unreachable", DefragCron: "@every 1s", Endpoints: []string{"http://127.0.0.1:1"}},
	}, base)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := lockDefrag(ctx, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, Config{Defrags: jobs})
	m := r.defragMetrics
	etcdtest.Eventually(t, 30*time.Second, func() error {
		if n := testutil.ToFloat64(m.skips.WithLabelValues("shrink", reasonRunning)); n < 2 {
			return fmt.Errorf("%v slots skipped for the lock", n)
		}
		if n := testutil.ToFloat64(m.runs.WithLabelValues("unreachable", resultFailure)); n < 1 {
			return fmt.Errorf("%v failed runs of the unreachable cluster", n)
		}
		return nil
	})
	if n := testutil.ToFloat64(m.runs.WithLabelValues("shrink", resultSuccess)) + testutil.ToFloat64(m.runs.WithLabelValues("shrink", resultFailure)); n != 0 {
		t.Fatalf("%v runs while another held the lock", n)
	}
	for name, s := range sizes() {
		if s < before[name] {
			t.Fatalf("%s shrank from %d to %d while another held the lock", name, before[name], s)
		}
	}
	unlock()
	etcdtest.Eventually(t, 60*time.Second, func() error {
		if n := testutil.ToFloat64(m.runs.WithLabelValues("shrink", resultSuccess)); n < 1 {
			return fmt.Errorf("%v successful runs", n)
		}
		return nil
	})
	after := sizes()
	for name, s := range after {
		if s > before[name]/2 {
			t.Errorf("%s: %d bytes, %d before the scheduled defrag", name, s, before[name])
		}
	}
	if n := testutil.ToFloat64(m.members.WithLabelValues("shrink", "defragmented")); n < 3 {
		t.Errorf("%v members defragmented, want 3", n)
	}
	if n := testutil.ToFloat64(m.reclaimed.WithLabelValues("shrink")); n < 8<<20 {
		t.Errorf("%v bytes reclaimed, want > 8 MiB", n)
	}
	if n := testutil.ToFloat64(m.consecutiveFailures.WithLabelValues("unreachable")); n < 1 {
		t.Errorf("unreachable: %v consecutive failures", n)
	}
	if r.logs.FilterMessage("rolling defrag failed").Len() == 0 {
		t.Error("no 'rolling defrag failed' logged for the unreachable cluster")
	}
}
