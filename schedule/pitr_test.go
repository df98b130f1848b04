package schedule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/pitr"
)

func TestPITRConfig(t *testing.T) {
	base := backup.SaveConfig{Endpoints: []string{"http://127.0.0.1:2379"}}
	jcs, err := LoadConfig(writeConfig(t, "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', pitr: true, pitr-interval: 250ms, pitr-segment-size: 4MiB}\n  - {name: b, cron: '@hourly', to: 'mem://', tag: b, pitr: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := Jobs(jcs, base)
	if err != nil {
		t.Fatal(err)
	}
	if p := jobs[0].PITR; p == nil || p.Interval != 250*time.Millisecond || p.SegmentSize != 4<<20 {
		t.Errorf("job a's log: %+v", p)
	}
	if p := jobs[1].PITR; p == nil || p.Interval != pitr.DefaultInterval || p.SegmentSize != pitr.DefaultSegmentSize {
		t.Errorf("job b's log: %+v", p)
	}
	if jobs[0].Save.KeepMore != nil || jobs[1].Save.KeepMore != nil {
		t.Errorf("jobs without pitr-keep-within keep more than their policy")
	}
	jcs, err = LoadConfig(writeConfig(t, "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', keep-last: 2, pitr: true, pitr-keep-within: 36h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if jobs, err = Jobs(jcs, base); err != nil {
		t.Fatal(err)
	}
	if p := jobs[0].PITR; p.KeepWithin != 36*time.Hour || jobs[0].Save.KeepMore == nil || jobs[0].Policy.Last != 2 {
		t.Errorf("pitr-keep-within 36h: window %s, keep-more set %v, policy %+v", p.KeepWithin, jobs[0].Save.KeepMore != nil, jobs[0].Policy)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"pitr without cron", "jobs:\n  - {name: a, to: 'mem://', pitr: true}\n", `job "a": pitr: needs cron`},
		{"bad interval", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', pitr: true, pitr-interval: 0s}\n", `job "a": pitr-interval: "0s": expected a duration from 10ms to 1h`},
		{"bad size", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', pitr: true, pitr-segment-size: 16 megs}\n", `job "a": pitr-segment-size: "16 megs": expected a size from 1KiB to 1GiB`},
		{"tiny size", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', pitr: true, pitr-segment-size: 10}\n", `pitr-segment-size: "10"`},
		{"tuning without pitr", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', pitr-interval: 1s}\n", `job "a": pitr: not set`},
		{"window without pitr", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', keep-last: 1, pitr-keep-within: 24h}\n", `job "a": pitr-keep-within: given without pitr`},
		{"window without a keep rule", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', pitr: true, pitr-keep-within: 24h}\n", `job "a": pitr-keep-within: given without a keep-* rule`},
		{"malformed window", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', keep-last: 1, pitr: true, pitr-keep-within: 7d}\n", `job "a": pitr-keep-within: "7d": expected a duration of 0 or more`},
		{"negative window", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', keep-last: 1, pitr: true, pitr-keep-within: -1h}\n", `pitr-keep-within: "-1h": expected a duration`},
	} {
		jcs, err := LoadConfig(writeConfig(t, tc.yaml))
		if err == nil {
			_, err = Jobs(jcs, base)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v; want one line with %q", tc.name, err, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "16MiB": 16 << 20, "1 GiB": 1 << 30, "5KB": 5000, "0": 0, "1.5GiB": 3 << 29} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "16m", "-1", "1.5.1MiB", "lots", "99999999999999999999GiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	if _, err := ParseSize("-1MiB"); !errors.Is(err, ErrNegativeSize) {
		t.Errorf("ParseSize(-1MiB): %v, want ErrNegativeSize", err)
	}
}

// A job with a log streams from its snapshot on: the log reaches every
// write, and its metrics say so.
func TestScheduleStreamsTheLog(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	etcdtest.Put(t, c.Client(), "k", "v")
	bucket := "file://" + t.TempDir()
	job := testJob(t, c.Endpoints(), JobConfig{Name: "logged", Cron: "@every 1h", To: bucket, Tag: "logged", PITR: true, PITRInterval: "100ms"})
	r := start(t, Config{Jobs: []Job{job}})
	for i := range 50 {
		etcdtest.Put(t, c.Client(), fmt.Sprintf("k%d", i), "v")
	}
	resp, err := c.Client().Get(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	end := resp.Header.Revision
	store, err := backup.OpenStore(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	etcdtest.Eventually(t, 30*time.Second, func() error {
		last, err := pitr.LastLogged(context.Background(), store, "logged")
		if err == nil && last < end {
			err = fmt.Errorf("log reaches %d, want %d", last, end)
		}
		return err
	})
	snap, err := store.Find(context.Background(), "latest", "logged")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pitr.ListLog(context.Background(), store, "logged")
	if err != nil {
		t.Fatal(err)
	}
	next := snap.Manifest.Revision + 1
	for _, n := range names {
		if n.First > next {
			t.Fatalf("log holds %s after revision %d: a hole", n, next-1)
		}
		next = max(next, n.Last+1)
	}
	if next <= end {
		t.Fatalf("log ends at %d, before %d", next-1, end)
	}
	families, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range families {
		if mf.GetName() == "etcdops_schedule_pitr_last_flushed_revision" && mf.Metric[0].Gauge.GetValue() >= float64(end) {
			found = true
		}
	}
	if !found {
		t.Error("no etcdops_schedule_pitr_last_flushed_revision at the log's end")
	}
	if code, body := r.healthz(t); code != http.StatusOK {
		t.Errorf("/healthz while the log streams = %d %s, want 200", code, body)
	}
	r.stop(t)
}

func TestLogProblem(t *testing.T) {
	started := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	gap := &pitr.GapRecord{Tag: "t", First: 101, Last: 180, Time: started.Add(10 * time.Minute), Reason: "etcd compacted the log's next revision"}
	for _, tc := range []struct {
		name  string
		state pitr.LogState
		now   time.Time
		want  string // in the problem; "" for none
	}{
		{"streaming", pitr.LogState{Streaming: true, Since: started}, started.Add(5 * time.Hour), ""},
		{"not yet streaming, just started", pitr.LogState{}, started.Add(30 * time.Second), ""},
		{"never streamed", pitr.LogState{}, started.Add(2 * time.Minute), "has not streamed for 2m0s"},
		{"stopped a moment ago: retrying", pitr.LogState{Since: started.Add(time.Hour)}, started.Add(time.Hour + 20*time.Second), ""},
		{"stopped for long", pitr.LogState{Since: started.Add(time.Hour)}, started.Add(time.Hour + 90*time.Second), "has not streamed for 1m30s"},
		{"a gap, streaming again", pitr.LogState{Streaming: true, Since: started.Add(11 * time.Minute), Gap: gap}, started.Add(40 * time.Minute),
			"recorded a gap 30m0s ago: revisions 101-180 are not recoverable (etcd compacted"},
		{"a gap past the report window", pitr.LogState{Streaming: true, Since: started.Add(11 * time.Minute), Gap: gap}, started.Add(2 * time.Hour), ""},
	} {
		got := LogProblem(tc.state, started, tc.now)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestHealthzReportsALogNotStreaming: a job whose log cannot stream (its
// cluster is down) turns /healthz to 503 once it has not streamed for
// LogNotStreamingGrace, naming the job and the log.
func TestHealthzReportsALogNotStreaming(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	job := testJob(t, []string{"http://127.0.0.1:1"}, JobConfig{Name: "dark", Cron: "@every 1h", To: "file://" + t.TempDir(), Tag: "dark", PITR: true, CatchUp: "none"})
	r := start(t, Config{Jobs: []Job{job}, Now: clock})
	if code, body := r.healthz(t); code != http.StatusOK {
		t.Errorf("/healthz at start = %d %s, want 200", code, body)
	}
	mu.Lock()
	now = now.Add(LogNotStreamingGrace + time.Minute)
	mu.Unlock()
	if code, body := r.healthz(t); code != http.StatusServiceUnavailable || !strings.Contains(body, "job dark: the change log has not streamed for 2m0s") {
		t.Errorf("/healthz after the cluster was down for 2m = %d %q, want 503 naming the log", code, body)
	}
}
