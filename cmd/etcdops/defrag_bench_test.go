package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/internal/etcdtest"
)

// BenchmarkDefrag is bench/defrag.sh: a 3-member `etcdops serve` cluster
// (real fsync) restored from a snapshot of BENCH_DB_MB MiB with 60% of it
// free, under 500 writes/s through etcd's client, defragmented by `etcdops
// defrag` and by the loop operators write (`etcdctl defrag` of each member
// in turn, then `etcdctl alarm disarm`), each from a fresh restore; then the
// same writer on a cluster left alone. With BENCH_GATE=both (the default)
// both ways run again on members with StopGRPCServiceOnDefrag and a writer
// that uses gRPC health checking. It prints a markdown table; it runs once
// whatever b.N.
func BenchmarkDefrag(b *testing.B) {
	mib, err := strconv.Atoi(cmp.Or(os.Getenv("BENCH_DB_MB"), "256"))
	if err != nil || mib <= 0 {
		b.Fatalf("BENCH_DB_MB=%q: want a size in MiB", os.Getenv("BENCH_DB_MB"))
	}
	gates := map[string][]bool{"off": {false}, "on": {true}, "both": {false, true}}[cmp.Or(os.Getenv("BENCH_GATE"), "both")]
	if gates == nil {
		b.Fatalf("BENCH_GATE=%q: want off, on or both", os.Getenv("BENCH_GATE"))
	}
	work := b.TempDir()
	if d := os.Getenv("BENCH_DIR"); d != "" {
		if work, err = os.MkdirTemp(d, "defrag-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(work) })
	}
	snap := fragmentedSnapshot(b, work, mib, 40)
	var results []defragBench
	for _, gate := range gates {
		for _, way := range []string{defragWayStock, defragWayEtcdops} {
			r := benchDefragWay(b, work, snap, way, gate, 0)
			benchSay("%s: %s", r.label(), r)
			results = append(results, r)
		}
	}
	longest := time.Duration(0)
	for _, r := range results {
		longest = max(longest, r.total)
	}
	r := benchDefragWay(b, work, snap, defragWayNone, false, longest)
	benchSay("%s: %s", r.label(), r)
	results = append(results, r)
	fmt.Println(defragBenchTable(results))
}

const (
	defragWayNone    = "no defrag (baseline)"
	defragWayStock   = "etcdctl defrag loop"
	defragWayEtcdops = "etcdops defrag"
)

// defragBench is what one way of defragmenting took and what the writer saw.
type defragBench struct {
	way        string
	gate       bool
	total      time.Duration
	members    []time.Duration // each member's own defragmentation, in order
	before     int64           // the largest member's database before, and after
	after      int64
	writes     etcdtest.WriterStats
	elections  uint64
	dropped    int // writes failed as etcd fails them while leadership moves
	moveWindow [2]time.Time
}

func (r defragBench) label() string {
	if r.gate {
		return r.way + ", StopGRPCServiceOnDefrag + health-checking client"
	}
	return r.way
}

func (r defragBench) String() string {
	kinds := map[string]int{}
	for _, f := range r.writes.Failures {
		kinds[f.Err.Error()]++
	}
	return fmt.Sprintf("%s; failures by error: %v", r.summary(), kinds)
}

func (r defragBench) summary() string {
	return fmt.Sprintf("%.1fs (members %v), db %d → %d MiB, %d elections, %d failed writes (%d dropped at the move), put p50 %v p99 %v max %v, %.0f writes/s",
		r.total.Seconds(), r.members, r.before>>20, r.after>>20, r.elections, r.writes.Failed, r.dropped,
		r.writes.Percentile(0.5).Round(100*time.Microsecond), r.writes.Percentile(0.99).Round(100*time.Microsecond),
		r.writes.MaxLatency.Round(time.Millisecond), r.writes.Rate())
}

// benchDefragWay restores a fresh cluster from snap, starts the writer and
// defragments the cluster the given way (or waits for idle, for the
// baseline).
func benchDefragWay(b *testing.B, work, snap, way string, gate bool, idle time.Duration) defragBench {
	dir, err := os.MkdirTemp(work, "way-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	specs := etcdtest.SpecsNamed(b, dir, "a", "b", "c")
	restoreSpecs(b, snap, specs)
	for i := range specs {
		specs[i].Extra = []string{"--feature-gates=StopGRPCServiceOnDefrag=" + strconv.FormatBool(gate)}
	}
	procs := etcdtest.StartProcesses(b, specs, etcdtest.EtcdopsBin(b), "serve")
	defer func() {
		for _, p := range procs.Procs {
			p.Kill(b)
		}
	}()
	eps := procs.Endpoints()
	cli := etcdtest.NewClient(b, eps...)
	res := defragBench{way: way, gate: gate}
	termBefore, sizeBefore := clusterTerm(b, cli, eps)
	res.before = sizeBefore
	benchSay("%s: restored and started 3 members of %d MiB", res.label(), sizeBefore>>20)
	// Workers enough that writes blocked on a member for the client's 5s
	// timeout do not hold the others back.
	w := etcdtest.StartWriter(b, eps, etcdtest.WriterConfig{Rate: 500, Duration: time.Hour, Workers: 3000, HealthCheck: gate})
	etcdtest.Eventually(b, time.Minute, func() error {
		if s := w.Stats(); s.Acked < 500 {
			return fmt.Errorf("writer: %v", s)
		}
		return nil
	})
	start := time.Now()
	switch way {
	case defragWayNone:
		for time.Since(start) < idle {
			select {
			case <-w.Done():
				b.Fatalf("writer stopped: %v", w.Stats())
			case <-time.After(time.Until(start.Add(idle))):
			}
		}
	case defragWayStock:
		for _, ep := range eps {
			t0 := time.Now()
			// etcdctl's default 5s command timeout gives up on a large member
			// (etcd goes on defragmenting); operators raise it.
			etcdtest.Etcdctl(b, []string{ep}, "defrag", "--command-timeout=30m")
			res.members = append(res.members, time.Since(t0).Round(10*time.Millisecond))
		}
		etcdtest.Etcdctl(b, eps, "alarm", "disarm")
	case defragWayEtcdops:
		r := runDefragForBench(b, eps)
		for _, m := range r.finished()["members"].([]any) {
			if m.(map[string]any)["outcome"] != "defragmented" {
				b.Fatalf("etcdops defrag: member not defragmented: %v", m)
			}
			res.members = append(res.members, time.Duration(m.(map[string]any)["seconds"].(float64)*float64(time.Second)).Round(10*time.Millisecond))
		}
		for i, ev := range r.events {
			if ev["event"] == "move-leader" && i > 0 {
				res.moveWindow[0], _ = time.Parse(time.RFC3339Nano, r.events[i-1]["time"].(string))
				res.moveWindow[1], _ = time.Parse(time.RFC3339Nano, ev["time"].(string))
			}
		}
	}
	res.total = time.Since(start)
	res.writes = w.Stop()
	for _, f := range res.writes.Failures {
		if !f.Time.Before(res.moveWindow[0]) && !f.Time.After(res.moveWindow[1]) && droppedByTransfer(f.Err) {
			res.dropped++
		}
	}
	termAfter, sizeAfter := clusterTerm(b, cli, eps)
	res.elections, res.after = termAfter-termBefore, sizeAfter
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.Verify(ctx, cli); err != nil {
		b.Fatalf("%s: %v", res.label(), err)
	}
	return res
}

// runDefragForBench runs `etcdops defrag --all -w json` on the cluster at
// eps: every member, as the stock loop does (at the smaller sizes the
// default rule's 100 MiB of free space would skip them).
func runDefragForBench(b *testing.B, eps []string) defragRun {
	cmd := exec.Command(etcdtest.EtcdopsBin(b), "defrag", "--endpoints", strings.Join(eps, ","), "--all", "-w", "json")
	out, err := cmd.Output()
	var r defragRun
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var ev map[string]any
		if jerr := json.Unmarshal([]byte(line), &ev); jerr == nil {
			r.events = append(r.events, ev)
		}
	}
	if err != nil || r.finished() == nil {
		b.Fatalf("etcdops defrag: %v\n%s", err, out)
	}
	return r
}

// clusterTerm returns the highest raft term and the largest database of the
// members at eps.
func clusterTerm(b *testing.B, cli *clientv3.Client, eps []string) (term uint64, size int64) {
	var mu sync.Mutex
	for _, ep := range eps {
		etcdtest.Eventually(b, time.Minute, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st, err := cli.Status(ctx, ep)
			if err != nil {
				return err
			}
			mu.Lock()
			term, size = max(term, st.RaftTerm), max(size, st.DbSize)
			mu.Unlock()
			return nil
		})
	}
	return term, size
}

// restoreSpecs restores snap into the data dir of each spec with stock
// etcdutl, as the members of one cluster.
func restoreSpecs(tb testing.TB, snap string, specs []etcdtest.MemberSpec) {
	tb.Helper()
	for _, s := range specs {
		cmd := exec.Command(etcdtest.Tool(tb, "etcdutl"), "snapshot", "restore", snap, "--name", s.Name, "--data-dir", s.DataDir,
			"--initial-cluster", s.InitialCluster, "--initial-cluster-token", s.Token, "--initial-advertise-peer-urls", s.PeerURL)
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("restore %s: %v\n%s", s.Name, err, out)
		}
	}
}

// fragmentedSnapshot fills a stock etcd member (without fsync, which a fill
// does not need) with ~mib MiB of 3900-byte values in transactions of 100,
// keeps keepPercent of the blocks of 100 keys, spread evenly, deletes the rest,
// compacts, and saves a snapshot: a database of ~mib MiB with about
// 100-keepPercent % of it free.
func fragmentedSnapshot(b testing.TB, work string, mib, keepPercent int) string {
	b.Helper()
	spec := etcdtest.SpecsNamed(b, filepath.Join(work, "fill"), "fill")
	p := &etcdtest.Process{Spec: spec[0], Binary: etcdtest.Tool(b, "etcd")}
	p.Spec.Extra = []string{"--unsafe-no-fsync", "--quota-backend-bytes=17179869184", "--log-level=warn"}
	p.Start(b)
	p.WaitHealthy(b, time.Minute)
	cli := etcdtest.NewClient(b, spec[0].ClientURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	blocks := mib * 256 / 100
	value := strings.Repeat("v", 3900)
	jobs := make(chan int)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for blk := range jobs {
				var ops []clientv3.Op
				for i := range 100 {
					ops = append(ops, clientv3.OpPut(fmt.Sprintf("/fill/%06d/%02d", blk, i), value))
				}
				if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	if _, ok := b.(*testing.B); ok {
		benchSay("filling a stock member with %d keys of 3900 bytes", blocks*100)
	}
	for blk := range blocks {
		select {
		case jobs <- blk:
		case err := <-errs:
			b.Fatalf("fill: %v", err)
		}
	}
	close(jobs)
	wg.Wait()
	var rev int64
	for blk := range blocks {
		if (blk+1)*keepPercent/100 == blk*keepPercent/100 { // kept blocks spread evenly
			resp, err := cli.Delete(ctx, fmt.Sprintf("/fill/%06d/", blk), clientv3.WithPrefix())
			if err != nil {
				b.Fatalf("delete: %v", err)
			}
			rev = resp.Header.Revision
		}
	}
	if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		b.Fatalf("compact: %v", err)
	}
	st, err := cli.Status(ctx, spec[0].ClientURL)
	if err != nil {
		b.Fatal(err)
	}
	if _, ok := b.(*testing.B); ok {
		benchSay("filled: %d MiB, %d MiB in use", st.DbSize>>20, st.DbSizeInUse>>20)
	}
	snap := filepath.Join(work, "snap.db")
	etcdtest.Etcdctl(b, []string{spec[0].ClientURL}, "snapshot", "save", snap)
	p.Kill(b)
	os.RemoveAll(spec[0].DataDir)
	return snap
}

func defragBenchTable(rs []defragBench) string {
	var sb strings.Builder
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
	fmt.Fprintf(&sb, "| way | total | members' own defrag | failed writes (dropped at the move) | elections | put p50 ms | p99 ms | max ms | writes/s |\n")
	fmt.Fprintf(&sb, "|---|---|---|---|---|---|---|---|---|\n")
	stockSum := map[bool]time.Duration{}
	stockP99 := map[bool]time.Duration{}
	for _, r := range rs {
		var own []string
		var sum time.Duration
		for _, d := range r.members {
			own = append(own, fmt.Sprintf("%.1f", d.Seconds()))
			sum += d
		}
		if r.way == defragWayStock {
			stockSum[r.gate], stockP99[r.gate] = sum, r.writes.Percentile(0.99)
		}
		ownCol := "-"
		if len(own) > 0 {
			ownCol = fmt.Sprintf("%s s (sum %.1f s)", strings.Join(own, " + "), sum.Seconds())
		}
		fmt.Fprintf(&sb, "| %s | %.1f s | %s | %d (%d) | %d | %s | %s | %s | %.0f |\n", r.label(), r.total.Seconds(), ownCol,
			r.writes.Failed, r.dropped, r.elections, ms(r.writes.Percentile(0.5)), ms(r.writes.Percentile(0.99)),
			ms(r.writes.MaxLatency), r.writes.Rate())
	}
	sb.WriteString("\n")
	// The goals compare with the stock loop as users run it today: without
	// the gate, through a client without health checking.
	for _, r := range rs {
		if r.way != defragWayEtcdops || stockSum[false] == 0 {
			continue
		}
		fmt.Fprintf(&sb, "%s: total %.2f× the sum of the members' own defrag times in the stock loop (goal ≤ 1.2×); put p99 %.2f× the stock loop's (goal ≤ 0.5×)\n",
			r.label(), r.total.Seconds()/stockSum[false].Seconds(), float64(r.writes.Percentile(0.99))/float64(stockP99[false]))
	}
	return sb.String()
}
