package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/schedule"
)

// defragLogRun is one scheduled rolling defrag as a log tells it.
type defragLogRun struct {
	by         string
	slot       string
	start, end time.Time
}

// defragLogRuns reads the runs from a JSON log: from "rolling defrag
// started" to its end (done, failed or stopped).
func defragLogRuns(t *testing.T, by, log string) []defragLogRun {
	t.Helper()
	var runs []defragLogRun
	open := -1
	for _, line := range strings.Split(log, "\n") {
		var e struct {
			Msg  string `json:"msg"`
			TS   string `json:"ts"`
			Slot string `json:"slot"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || !strings.HasPrefix(e.Msg, "rolling defrag ") {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, e.TS)
		if err != nil {
			t.Fatalf("%s: ts %q: %v", by, e.TS, err)
		}
		switch {
		case e.Msg == "rolling defrag started":
			runs = append(runs, defragLogRun{by: by, slot: e.Slot, start: ts})
			open = len(runs) - 1
		case open >= 0 && (e.Msg == "rolling defrag done" || e.Msg == "rolling defrag failed" || strings.HasPrefix(e.Msg, "rolling defrag stopped")):
			runs[open].end = ts
			open = -1
		}
	}
	return runs
}

// TestScheduleDefragCron: three `serve --defrag-cron "@every 1s"` members
// run the cluster's rolling defrag, one member per slot (the one that
// claimed it), and `schedule --defrag-cron` against the same cluster
// compacts and shrinks every member's database at one of its slots; no two
// runs, of any process, overlap; its metrics count the run and the bytes.
func TestScheduleDefragCron(t *testing.T) {
	c := etcdtest.StartServeCluster(t, 3, "--defrag-cron", "@every 1s")
	cli := etcdtest.NewClient(t, c.Endpoints()...)
	ctx := context.Background()
	value := strings.Repeat("v", 64<<10)
	for i := range 16 {
		var ops []clientv3.Op
		for j := range 16 {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("/grow/%02d/%02d", i, j), value))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(ctx, "/grow/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		etcdtest.Put(t, cli, "/pad", fmt.Sprint(i))
	}
	sizes := func() map[string]int64 {
		out := map[string]int64{}
		for _, p := range c.Procs {
			sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			st, err := cli.Status(sctx, p.Spec.ClientURL)
			cancel()
			if err == nil {
				out[p.Spec.Name] = st.DbSize
			}
		}
		return out
	}
	before := sizes()

	addr := etcdtest.FreeAddr(t)
	cmd := exec.Command(etcdtest.EtcdopsBin(t), "schedule", "--endpoints", c.Endpoints()[0], "--defrag-cron", "@every 1s",
		"--min-free", "1MiB", "--compact", "--compact-keep-revisions", "10", "--metrics-addr", addr)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()
	metric := func(name string) float64 {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(b)
		if m == nil {
			return -1
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	etcdtest.Eventually(t, 60*time.Second, func() error {
		if n := metric(`etcdops_defrag_runs_total{defrag_job="defrag",result="success"}`); n < 1 {
			return fmt.Errorf("%v successful scheduled runs\n%s", n, stderr.String())
		}
		return nil
	})
	for name, s := range sizes() {
		if s > before[name]/2 {
			t.Errorf("%s: %d bytes after the scheduled defrag, %d before", name, s, before[name])
		}
	}
	if n := metric(`etcdops_defrag_reclaimed_bytes_total{defrag_job="defrag"}`); n < 8<<20 {
		t.Errorf("reclaimed %v bytes, want more than 8 MiB", n)
	}
	if n := metric(`etcdops_defrag_members_total{defrag_job="defrag",outcome="defragmented"}`); n < 3 {
		t.Errorf("%v members defragmented, want 3", n)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("schedule exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("schedule still running 30s after SIGTERM\n%s", stderr.String())
	}
	// The members go on with their slots for a few seconds more (the
	// process above, running at every slot, held the lock most of the time).
	etcdtest.Eventually(t, 30*time.Second, func() error {
		n := 0
		for _, p := range c.Procs {
			n += len(defragLogRuns(t, p.Spec.Name, p.Output()))
		}
		if n < 4 {
			return fmt.Errorf("%d runs by the members", n)
		}
		return nil
	})
	claims := map[string]string{}
	claimsRead := time.Now()
	resp, err := cli.Get(ctx, schedule.DefragClaimPrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		claims[strings.TrimPrefix(string(kv.Key), schedule.DefragClaimPrefix+"defrag/")] = string(kv.Value)
	}
	for _, p := range c.Procs {
		p.Signal(t, syscall.SIGTERM)
		p.Wait(t, 30*time.Second)
	}

	runs := defragLogRuns(t, "schedule", stderr.String())
	bySlot := map[string][]string{}
	for _, p := range c.Procs {
		for _, r := range defragLogRuns(t, p.Spec.Name, p.Output()) {
			runs = append(runs, r)
			bySlot[r.slot] = append(bySlot[r.slot], r.by)
		}
	}
	for slot, by := range bySlot {
		at, err := time.Parse(time.RFC3339Nano, slot)
		if err != nil {
			t.Fatalf("slot %q: %v", slot, err)
		}
		slotKey := at.UTC().Format("2006-01-02_15-04-05")
		if _, ok := claims[slotKey]; !ok && !at.Before(claimsRead.Add(-time.Second)) {
			continue // claimed after the claims were read
		}
		if len(by) != 1 || claims[slotKey] != by[0] {
			t.Errorf("slot %s: run by %v, claimed by %q; want exactly the one member that claimed it", slot, by, claims[slotKey])
		}
	}
	slices.SortFunc(runs, func(a, b defragLogRun) int { return a.start.Compare(b.start) })
	for i := 1; i < len(runs); i++ {
		if prev := runs[i-1]; prev.end.IsZero() || runs[i].start.Before(prev.end) {
			t.Errorf("run of %s at %s starts before the run of %s from %s ended (%s)", runs[i].by, runs[i].start, prev.by, prev.start, prev.end)
		}
	}
}
