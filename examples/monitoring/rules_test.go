// Package monitoring holds Prometheus alert rules for etcdops' metrics;
// its tests check them with promtool and against the metrics themselves.
package monitoring

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdclient"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/maintenance"
	"github.com/etcdops/etcdops/pitr"
	"github.com/etcdops/etcdops/schedule"
)

var ruleFiles = []string{"schedule.rules.yml", "health.rules.yml"}

func promtool(t *testing.T, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: scripts/tools.sh installs Debian's prometheus package, which has it")
	}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestRulesPassPromtool(t *testing.T) {
	promtool(t, append([]string{"check", "rules"}, ruleFiles...)...)
	promtool(t, "test", "rules", "schedule.rules.test.yml", "health.rules.test.yml")
}

var metricName = regexp.MustCompile(`\betcd(ops)?_[a-z_]+`)

// TestRulesUseExistingMetrics: every metric a rule names is one that the
// scheduler registers, `health -w prometheus` writes (its golden output) or
// an etcd member serves on its /metrics.
func TestRulesUseExistingMetrics(t *testing.T) {
	known := map[string]bool{}
	golden, err := os.ReadFile("../../health/testdata/degraded.prometheus")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range metricName.FindAllString(string(golden), -1) {
		known[n] = true
	}

	reg := prometheus.NewRegistry()
	pitr.NewMetrics(reg, "logged") // what a job with --pitr adds
	jobs, err := schedule.Jobs([]schedule.JobConfig{{Name: "j", Cron: "@hourly", To: "mem://", Tag: "j", CatchUp: "none"}},
		backup.SaveConfig{Endpoints: []string{"http://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defrags, err := schedule.DefragJobs([]schedule.JobConfig{{Name: "d", DefragCron: "@yearly"}},
		maintenance.Options{Client: etcdclient.Config{Endpoints: []string{"http://127.0.0.1:1"}}, RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s, err := schedule.New(schedule.Config{Jobs: jobs, Defrags: defrags, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	etcdtest.Eventually(t, 10*time.Second, func() error {
		mfs, err := reg.Gather()
		for _, mf := range mfs {
			known[mf.GetName()] = true
		}
		if !known["etcdops_schedule_next_run_timestamp_seconds"] || !known["etcdops_defrag_runs_total"] {
			return context.DeadlineExceeded
		}
		return err
	})

	c := etcdtest.StartEmbedded(t, 1)
	resp, err := http.Get(c.Endpoints()[0] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^(etcd_[a-z_]+)`).FindAllStringSubmatch(string(b), -1) {
		known[m[1]] = true
	}

	for _, f := range ruleFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range metricName.FindAllString(string(b), -1) {
			if !known[n] {
				t.Errorf("%s: metric %s is not exported by etcdops", f, n)
			}
		}
	}
}
