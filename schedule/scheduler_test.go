package schedule

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/robfig/cron/v3"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdclient"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/objtest"
)

func TestMain(m *testing.M) { objtest.Main(m) }

func dial(endpoints ...string) (*clientv3.Client, error) {
	return etcdclient.New(&etcdclient.Config{Endpoints: endpoints, DialTimeout: 2 * time.Second}, nil, backup.StreamDialOptions()...)
}

// testJob is a job of jc against endpoints, as the command builds it.
func testJob(t *testing.T, endpoints []string, jc JobConfig) Job {
	t.Helper()
	jobs, err := Jobs([]JobConfig{jc}, backup.SaveConfig{Endpoints: endpoints, Dial: dial, CommandTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return jobs[0]
}

// running is a scheduler started by start.
type running struct {
	*Scheduler
	cancel context.CancelFunc
	done   chan error
	logs   *observer.ObservedLogs
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	cfg.Logger = zap.New(core)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Scheduler: s, cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the scheduler and waits for Run to return nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func (r *running) runs(job, result string) float64 {
	return testutil.ToFloat64(r.metrics.runs.WithLabelValues(job, result))
}

func (r *running) skips(job, reason string) float64 {
	return testutil.ToFloat64(r.metrics.skips.WithLabelValues(job, reason))
}

// healthz asks the scheduler's /healthz.
func (r *running) healthz(t *testing.T) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	r.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	return rec.Code, rec.Body.String()
}

// heartbeats is a local HTTP server counting the POSTs it receives.
func heartbeats(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			n.Add(1)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func complete(t *testing.T, url, tag string) []backup.Snapshot {
	t.Helper()
	store, err := backup.OpenStore(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	snaps, err := store.List(context.Background(), tag, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []backup.Snapshot
	for _, s := range snaps {
		if s.Complete() {
			out = append(out, s)
		}
	}
	return out
}

func TestEverySecondToMinIOWithRetentionAndHeartbeat(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	etcdtest.Put(t, c.Client(), "k", "v")
	bucket := objtest.S3(t).NewBucket(t)
	hb, beats := heartbeats(t)
	job := testJob(t, c.Endpoints(), JobConfig{Name: "fast", Cron: "@every 1s", To: bucket, Tag: "fast", KeepLast: 2,
		HeartbeatURL: hb.URL + "/ping/secret-uuid"})
	r := start(t, Config{Jobs: []Job{job}, MaxAge: time.Minute})

	etcdtest.Eventually(t, 60*time.Second, func() error {
		if n := r.runs("fast", resultSuccess); n < 4 {
			return fmt.Errorf("%v successful runs", n)
		}
		return nil
	})
	if beats.Load() < 4 {
		t.Errorf("%d heartbeats after 4 successful runs", beats.Load())
	}
	if n := testutil.ToFloat64(r.metrics.pruned.WithLabelValues("fast")); n < 1 {
		t.Errorf("pruned %v, want retention to have removed older snapshots", n)
	}
	if code, body := r.healthz(t); code != http.StatusOK {
		t.Errorf("/healthz = %d %s", code, body)
	}
	r.stop(t)
	snaps := complete(t, bucket, "fast")
	if len(snaps) == 0 || len(snaps) > 3 {
		t.Errorf("%d complete snapshots with --keep-last 2", len(snaps))
	}
	for _, s := range snaps {
		if s.Name.Time.Nanosecond() != 0 {
			t.Errorf("%s is not named after a whole-second slot", s.Key())
		}
	}
	for _, e := range r.logs.All() {
		if strings.Contains(fmt.Sprint(e.ContextMap()), "secret-uuid") {
			t.Errorf("the heartbeat URL's secret path is in the log: %v", e.ContextMap())
		}
	}
	if r.logs.FilterMessage("next run").Len() < 4 {
		t.Errorf("%d 'next run' lines after 4 runs", r.logs.FilterMessage("next run").Len())
	}
}

func TestFailedRunIsCountedAndNeverPrunes(t *testing.T) {
	url := "file://" + t.TempDir()
	dir := strings.TrimPrefix(url, "file://")
	old := []string{"job_2026-01-01_00-00-00.db", "job_2026-01-02_00-00-00.db"}
	for _, n := range old {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
		os.WriteFile(filepath.Join(dir, n+".json"), []byte("{}"), 0o600)
	}
	ok, okBeats := heartbeats(t)
	fail, failBeats := heartbeats(t)
	job := testJob(t, []string{"http://127.0.0.1:1"}, JobConfig{Name: "dead", Cron: "@every 1s", To: url, Tag: "job", KeepLast: 1,
		HeartbeatURL: ok.URL, HeartbeatFailURL: fail.URL})
	r := start(t, Config{Jobs: []Job{job}, MaxAge: time.Hour})
	// A run's failure heartbeat is sent after its failure is counted.
	etcdtest.Eventually(t, 60*time.Second, func() error {
		if n, beats := r.runs("dead", resultFailure), failBeats.Load(); n < 2 || beats < 2 {
			return fmt.Errorf("%v failed runs, %d failure heartbeats", n, beats)
		}
		return nil
	})
	if n := testutil.ToFloat64(r.metrics.consecutiveFailures.WithLabelValues("dead")); n < 2 {
		t.Errorf("consecutive failures %v", n)
	}
	if failBeats.Load() < 2 || okBeats.Load() != 0 {
		t.Errorf("heartbeats: %d fail, %d success; want ≥ 2 and 0", failBeats.Load(), okBeats.Load())
	}
	if code, body := r.healthz(t); code != http.StatusServiceUnavailable || !strings.Contains(body, "job dead: last successful backup") {
		t.Errorf("/healthz = %d %q; want 503 naming the job", code, body)
	}
	r.stop(t)
	for _, n := range old {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("retention ran after a failed save: %v", err)
		}
	}
	if r.runs("dead", resultSuccess) != 0 || testutil.ToFloat64(r.metrics.pruned.WithLabelValues("dead")) != 0 {
		t.Error("a failed run counted as a success or pruned")
	}
}

// The pruned metric counts the snapshots retention removed, not the
// removals it tried: one old upload here can never be removed.
func TestPrunedCountsOnlyRemovedSnapshots(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	etcdtest.Put(t, c.Client(), "k", "v")
	url := "file://" + t.TempDir()
	dir := strings.TrimPrefix(url, "file://")
	// An incomplete upload (no manifest) long past its grace, whose
	// manifest name is taken by a non-empty directory: removing it fails.
	stuck := "job_2026-01-01_00-00-00.db"
	if err := os.WriteFile(filepath.Join(dir, stuck), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, stuck+".json", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	job := testJob(t, c.Endpoints(), JobConfig{Name: "j", Cron: "@every 1s", To: url, Tag: "job", KeepLast: 1})
	r := start(t, Config{Jobs: []Job{job}, MaxAge: time.Hour})
	etcdtest.Eventually(t, 60*time.Second, func() error {
		if n := r.runs("j", resultSuccess); n < 3 {
			return fmt.Errorf("%v successful runs", n)
		}
		return nil
	})
	r.stop(t)
	saved := r.runs("j", resultSuccess)
	left := float64(len(complete(t, url, "job")))
	pruned := testutil.ToFloat64(r.metrics.pruned.WithLabelValues("j"))
	if pruned != saved-left {
		t.Errorf("pruned metric %v; %v saves left %v snapshots, so %v were removed", pruned, saved, left, saved-left)
	}
	if n := testutil.ToFloat64(r.metrics.pruneFailures.WithLabelValues("j")); n != saved {
		t.Errorf("%v prune failures in %v runs, want one each", n, saved)
	}
	if _, err := os.Stat(filepath.Join(dir, stuck)); err != nil {
		t.Errorf("the upload that cannot be removed: %v", err)
	}
}

func TestOverlappingRunIsSkipped(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	// About 1 MiB of data through a bucket taking 256 KiB/s: each run
	// outlasts several activations of @every 1s.
	val := strings.Repeat("x", 1<<10)
	for i := 0; i < 1024; i++ {
		etcdtest.Put(t, c.Client(), fmt.Sprintf("k%04d", i), val)
	}
	slow := objtest.Slow(t, objtest.S3(t).NewBucket(t), 256<<10)
	job := testJob(t, c.Endpoints(), JobConfig{Name: "slow", Cron: "@every 1s", To: slow.URL, Tag: "slow", CatchUp: "none"})
	r := start(t, Config{Jobs: []Job{job}})
	etcdtest.Eventually(t, 90*time.Second, func() error {
		if r.skips("slow", reasonRunning) < 2 || r.runs("slow", resultSuccess) < 1 {
			return fmt.Errorf("%v skipped, %v done", r.skips("slow", reasonRunning), r.runs("slow", resultSuccess))
		}
		return nil
	})
	if r.logs.FilterMessage("run skipped: the previous run is still going").Len() < 2 {
		t.Error("skips were not logged")
	}
}

func TestCatchUpAfterRestart(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	etcdtest.Put(t, c.Client(), "k", "v")
	url := "file://" + t.TempDir()
	catchUpLogged := func(r *running, want bool) {
		t.Helper()
		etcdtest.Eventually(t, 10*time.Second, func() error {
			for _, e := range r.logs.FilterMessage("job scheduled").All() {
				if got := e.ContextMap()["catch-up-now"]; got != want {
					return etcdtest.Stop(fmt.Errorf("catch-up-now = %v, want %v", got, want))
				}
				return nil
			}
			return fmt.Errorf("not scheduled yet")
		})
	}
	job := testJob(t, c.Endpoints(), JobConfig{Name: "hourly", Cron: "@hourly", To: url})

	// No snapshot of the job's tag yet: one run at once, whatever the hour.
	r := start(t, Config{Jobs: []Job{job}})
	catchUpLogged(r, true)
	etcdtest.Eventually(t, 30*time.Second, func() error {
		if r.runs("hourly", resultSuccess) != 1 {
			return fmt.Errorf("no catch-up run yet")
		}
		return nil
	})
	// A run for a slot whose snapshot exists (a catch-up and the schedule,
	// two schedulers) is done, never a failure.
	slot := r.logs.FilterMessage("job scheduled").All()[0].ContextMap()["catch-up-slot"].(time.Time)
	r.runBackup(t.Context(), r.jobs[0], slot)
	if f := r.runs("hourly", resultFailure); f != 0 || r.logs.FilterMessage("slot already saved; nothing to do").Len() != 1 {
		t.Errorf("a second run for the saved slot %v: %v failed runs, logs %v", slot, f, r.logs.FilterMessage("backup failed").All())
	}
	r.stop(t)
	if snaps := complete(t, url, backup.SafeTag(c.Members[0].Spec.Name)); len(snaps) != 1 {
		t.Fatalf("%d snapshots after the catch-up run", len(snaps))
	}

	// Restarted right away: the newest snapshot is recent, no catch-up.
	r = start(t, Config{Jobs: []Job{job}})
	catchUpLogged(r, false)
	r.stop(t)

	// Restarted two hours later (by the clock): one catch-up run, not two.
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	r = start(t, Config{Jobs: []Job{job}, Now: later})
	catchUpLogged(r, true)
	etcdtest.Eventually(t, 30*time.Second, func() error {
		if r.runs("hourly", resultSuccess) != 1 {
			return fmt.Errorf("no catch-up run yet")
		}
		return nil
	})
	r.stop(t)

	// --catch-up none waits for the schedule however old the newest is.
	job.CatchUp = CatchUpNone
	r = start(t, Config{Jobs: []Job{job}, Now: func() time.Time { return time.Now().Add(5 * time.Hour) }})
	catchUpLogged(r, false)
	r.stop(t)
}

func TestPanickingRunKeepsTheSchedule(t *testing.T) {
	job := testJob(t, []string{"http://127.0.0.1:1"}, JobConfig{Name: "p", Cron: "@every 1s", To: "mem://"})
	s, err := New(Config{Jobs: []Job{job}})
	if err != nil {
		t.Fatal(err)
	}
	st := s.jobs[0]
	var calls atomic.Int64
	j := s.wrap(context.Background(), st, &st.running, func() {
		if calls.Add(1) == 1 {
			panic("boom")
		}
	})
	// Under cron, as the daemon runs it: the first run panics, the next
	// ones still run (robfig/cron#366 lost the token for good).
	c := cron.New(cron.WithLocation(time.UTC))
	c.Schedule(job.Cron.sched, j)
	c.Start()
	defer func() { <-c.Stop().Done() }()
	etcdtest.Eventually(t, 10*time.Second, func() error {
		if calls.Load() < 3 {
			return fmt.Errorf("%d runs", calls.Load())
		}
		return nil
	})
}

func TestScheduledRestoreTest(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	etcdtest.Put(t, c.Client(), "k", "v")
	url := "file://" + t.TempDir()
	job := testJob(t, c.Endpoints(), JobConfig{Name: "v", Cron: "@hourly", VerifyCron: "@every 1s", To: url})
	r := start(t, Config{Jobs: []Job{job}})
	etcdtest.Eventually(t, 60*time.Second, func() error {
		if n := testutil.ToFloat64(r.metrics.verifies.WithLabelValues("v", resultSuccess)); n < 1 {
			return fmt.Errorf("%v restore tests passed", n)
		}
		return nil
	})
	if testutil.ToFloat64(r.metrics.lastVerifySuccess.WithLabelValues("v")) == 0 {
		t.Error("no last verify timestamp")
	}
}

func TestJitterStopsOnShutdown(t *testing.T) {
	job := testJob(t, []string{"http://127.0.0.1:1"}, JobConfig{Name: "j", Cron: "@daily", To: "file://" + t.TempDir(), Tag: "j", Jitter: "1h"})
	r := start(t, Config{Jobs: []Job{job}})
	etcdtest.Eventually(t, 10*time.Second, func() error {
		if r.logs.FilterMessage("waiting before the run (jitter)").Len() == 0 {
			return fmt.Errorf("the catch-up run is not waiting yet")
		}
		return nil
	})
	stopped := time.Now()
	r.stop(t)
	if took := time.Since(stopped); took > 5*time.Second {
		t.Errorf("stopping during the jitter took %v", took)
	}
	if r.skips("j", reasonShutdown) != 1 || r.runs("j", resultFailure)+r.runs("j", resultSuccess) != 0 {
		t.Errorf("skips{shutdown} %v, runs %v+%v; want the waiting run skipped, none run", r.skips("j", reasonShutdown),
			r.runs("j", resultSuccess), r.runs("j", resultFailure))
	}
}

// TestMemberThatLosesEverySlotExportsTheClusterSeries: a scheduler whose
// every slot another member takes (its claims never win) exports as its
// last success the newest snapshot of the tag that the other member saved,
// so that an alert on the age of the last success does not fire on it
// (issue #14). It runs no backup itself.
func TestMemberThatLosesEverySlotExportsTheClusterSeries(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	url := "file://" + t.TempDir()
	jc := JobConfig{Name: "cluster", Cron: "@every 1s", To: url, Tag: "cluster-x", CatchUp: "none", KeepLast: 3}
	loser := testJob(t, c.Endpoints(), jc)
	loser.Claim = func(context.Context, string, time.Time) (bool, error) { return false, nil } // another member's slot
	l := start(t, Config{Jobs: []Job{loser}})
	start(t, Config{Jobs: []Job{testJob(t, c.Endpoints(), jc)}})

	var first time.Time
	etcdtest.Eventually(t, 30*time.Second, func() error {
		snaps := complete(t, url, "cluster-x")
		if len(snaps) == 0 {
			return fmt.Errorf("no snapshot yet")
		}
		first = snaps[0].Name.Time
		return nil
	})
	etcdtest.Eventually(t, 30*time.Second, func() error {
		if got := testutil.ToFloat64(l.metrics.lastSuccess.WithLabelValues("cluster")); got < unix(first) {
			return fmt.Errorf("the losing member's last success is %v; the other member saved the slot %v", got, first)
		}
		return nil
	})
	if n := l.runs("cluster", resultSuccess) + l.runs("cluster", resultFailure); n != 0 {
		t.Errorf("the losing member ran %v backups", n)
	}
	if code, body := l.healthz(t); code != http.StatusOK {
		t.Errorf("the losing member's /healthz = %d %s", code, body)
	}
}
