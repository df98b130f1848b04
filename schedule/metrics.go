package schedule

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Results and reasons: the only values of the result and reason labels.
const (
	resultSuccess = "success"
	resultFailure = "failure"

	reasonRunning  = "running"  // the previous run was still going
	reasonShutdown = "shutdown" // the scheduler was stopping
	reasonClaimed  = "claimed"  // another member took the slot
	reasonNoClaim  = "no-claim" // the slot could not be claimed (no quorum)

	kindSuccess = "success" // --heartbeat-url
	kindFailure = "failure" // --heartbeat-fail-url
)

// metrics are the daemon's Prometheus metrics. Labels are bounded:
// backup_job (from the configuration), result, reason and kind (the
// constants above).
type metrics struct {
	lastSuccess, lastAttempt, lastDuration, lastSize, lastRevision *prometheus.GaugeVec
	nextRun, interval, consecutiveFailures                         *prometheus.GaugeVec
	runs, skips, heartbeatFailures, verifies                       *prometheus.CounterVec
	pruned, pruneFailures                                          *prometheus.CounterVec
	lastVerifySuccess                                              *prometheus.GaugeVec
}

const namespace = "etcdops_schedule"

// jobLabel names a job's series. Not "job": Prometheus sets that label to
// the scrape job's name, and would rename ours to exported_job.
const jobLabel = "backup_job"

func newMetrics(reg prometheus.Registerer) *metrics {
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, []string{jobLabel})
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, append([]string{jobLabel}, labels...))
	}
	m := &metrics{
		lastSuccess:         gauge("last_success_timestamp_seconds", "When the newest snapshot of the job's tag was saved: from the bucket at start and after each slot another member took, then from its runs."),
		lastAttempt:         gauge("last_attempt_timestamp_seconds", "When the job's last run started."),
		lastDuration:        gauge("last_duration_seconds", "How long the job's last run took."),
		lastSize:            gauge("last_size_bytes", "Stored size of the job's last saved snapshot."),
		lastRevision:        gauge("last_revision", "etcd revision of the job's last saved snapshot."),
		nextRun:             gauge("next_run_timestamp_seconds", "When the job runs next."),
		interval:            gauge("interval_seconds", "The job's schedule's interval."),
		consecutiveFailures: gauge("consecutive_failures", "Runs of the job that failed since its last success."),
		lastVerifySuccess:   gauge("last_verify_success_timestamp_seconds", "When a scheduled restore test of the job's newest snapshot last passed."),
		runs:                counter("runs_total", "Runs of the job by result.", "result"),
		skips:               counter("skips_total", "Runs of the job not started, by reason.", "reason"),
		pruned:              counter("pruned_total", "Snapshots that retention removed after the job's saves."),
		pruneFailures:       counter("prune_failures_total", "Retention passes after a successful save that failed."),
		heartbeatFailures:   counter("heartbeat_failures_total", "Heartbeat requests that failed, by kind.", "kind"),
		verifies:            counter("verify_runs_total", "Scheduled restore tests by result.", "result"),
	}
	reg.MustRegister(m.lastSuccess, m.lastAttempt, m.lastDuration, m.lastSize, m.lastRevision, m.nextRun, m.interval,
		m.consecutiveFailures, m.lastVerifySuccess, m.runs, m.skips, m.pruned, m.pruneFailures, m.heartbeatFailures, m.verifies)
	return m
}

// init makes every series of a job exist from the start, at 0, so that
// alerts on rates and absent series see them.
func (m *metrics) init(job string) {
	for _, r := range []string{resultSuccess, resultFailure} {
		m.runs.WithLabelValues(job, r)
		m.verifies.WithLabelValues(job, r)
	}
	for _, r := range []string{reasonRunning, reasonShutdown, reasonClaimed, reasonNoClaim} {
		m.skips.WithLabelValues(job, r)
	}
	for _, k := range []string{kindSuccess, kindFailure} {
		m.heartbeatFailures.WithLabelValues(job, k)
	}
	m.pruned.WithLabelValues(job)
	m.pruneFailures.WithLabelValues(job)
	m.consecutiveFailures.WithLabelValues(job)
	// Never succeeded, as far as the bucket tells: an old timestamp, so
	// that an alert on the age of the last success covers it too.
	m.lastSuccess.WithLabelValues(job).Set(0)
}
