package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/etcdops/etcdops/internal/etcdclient"
	"github.com/etcdops/etcdops/maintenance"
)

// defragState is a defrag job with what its runs share.
type defragState struct {
	DefragJob
	lg *zap.Logger
	// running holds the job's one token in this process; the cluster's
	// defrag lock holds it across processes.
	running  atomic.Bool
	mu       sync.Mutex
	failures int
}

// defragMetrics are the metrics of scheduled rolling defrags: label
// defrag_job, and result, reason or outcome (bounded constants).
type defragMetrics struct {
	runs, skips, members, reclaimed        *prometheus.CounterVec
	lastSuccess, lastAttempt, lastDuration *prometheus.GaugeVec
	nextRun, interval, consecutiveFailures *prometheus.GaugeVec
}

const defragJobLabel = "defrag_job"

// defragOutcomes are the values of the outcome label: maintenance's, with
// "not run" as not-run.
var defragOutcomes = map[string]string{maintenance.OutcomeDefragmented: "defragmented", maintenance.OutcomeSkipped: "skipped",
	maintenance.OutcomeFailed: "failed", maintenance.OutcomeNotRun: "not-run"}

func newDefragMetrics(reg prometheus.Registerer) *defragMetrics {
	const ns = "etcdops_defrag"
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, []string{defragJobLabel})
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, append([]string{defragJobLabel}, labels...))
	}
	m := &defragMetrics{
		runs:                counter("runs_total", "Scheduled rolling defrags this process ran, by result.", "result"),
		skips:               counter("skips_total", "Scheduled rolling defrags not started, by reason (running: another run held the cluster's defrag lock; claimed: another member took the slot).", "reason"),
		members:             counter("members_total", "Members of scheduled rolling defrags by outcome (skipped: the rule did not hold, or a learner).", "outcome"),
		reclaimed:           counter("reclaimed_bytes_total", "Bytes of database files that scheduled rolling defrags reclaimed."),
		lastSuccess:         gauge("last_success_timestamp_seconds", "When a scheduled rolling defrag this process ran last succeeded."),
		lastAttempt:         gauge("last_attempt_timestamp_seconds", "When the last scheduled rolling defrag this process ran started."),
		lastDuration:        gauge("last_duration_seconds", "How long the last scheduled rolling defrag this process ran took."),
		nextRun:             gauge("next_run_timestamp_seconds", "When the job's next slot is."),
		interval:            gauge("interval_seconds", "The job's schedule's interval."),
		consecutiveFailures: gauge("consecutive_failures", "Scheduled rolling defrags this process ran that failed since its last success."),
	}
	reg.MustRegister(m.runs, m.skips, m.members, m.reclaimed, m.lastSuccess, m.lastAttempt, m.lastDuration, m.nextRun, m.interval, m.consecutiveFailures)
	return m
}

// init makes the job's series exist from the start, at 0.
func (m *defragMetrics) init(job string) {
	for _, r := range []string{resultSuccess, resultFailure} {
		m.runs.WithLabelValues(job, r)
	}
	for _, r := range []string{reasonRunning, reasonShutdown, reasonClaimed, reasonNoClaim} {
		m.skips.WithLabelValues(job, r)
	}
	for _, o := range defragOutcomes {
		m.members.WithLabelValues(job, o)
	}
	m.reclaimed.WithLabelValues(job)
	m.consecutiveFailures.WithLabelValues(job)
}

// defragLockTTL is how long the cluster's defrag lock outlives a process
// that died holding it.
const defragLockTTL = time.Minute

// errDefragRunning says that another process holds the cluster's defrag lock.
var errDefragRunning = errors.New("another rolling defrag of the cluster is running")

// lockDefrag takes the cluster's defrag lock without waiting; unlock
// gives it back. It fails with errDefragRunning when another holds it.
func lockDefrag(ctx context.Context, o maintenance.Options, lg *zap.Logger) (unlock func(), err error) {
	cfg := o.Client
	cli, err := etcdclient.New(&cfg, lg)
	if err != nil {
		return nil, fmt.Errorf("defrag lock: %w", err)
	}
	// The lease is granted here, within the request timeout (a session
	// would wait for an unreachable cluster for ever); the session only
	// keeps it alive, until unlock.
	lctx, cancel := context.WithTimeout(ctx, o.RequestTimeout)
	defer cancel()
	lease, err := cli.Grant(lctx, int64(defragLockTTL.Seconds()))
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("defrag lock: %w", err)
	}
	sess, err := concurrency.NewSession(cli, concurrency.WithLease(lease.ID), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("defrag lock: %w", err)
	}
	release := func() {
		sess.Orphan()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.RequestTimeout)
		defer cancel()
		cli.Revoke(rctx, lease.ID) // deletes the lock's key; else it expires
		cli.Close()
	}
	if err := concurrency.NewMutex(sess, DefragLockPrefix).TryLock(lctx); err != nil {
		release()
		if errors.Is(err, concurrency.ErrLocked) {
			return nil, errDefragRunning
		}
		return nil, fmt.Errorf("defrag lock: %w", err)
	}
	return release, nil
}

// runDefrag is one run of a defrag job, for the slot at: the slot's
// claim (serve), the cluster's defrag lock, the rolling defrag, its
// metrics and log lines. A run cut short by shutdown counts as neither
// success nor failure.
func (s *Scheduler) runDefrag(ctx context.Context, st *defragState, at time.Time) {
	m := s.defragMetrics
	skip := func(reason string) { m.skips.WithLabelValues(st.Name, reason).Inc() }
	defer s.logNextDefrag(st)
	if st.Claim != nil {
		won, err := st.Claim(ctx, st.Name, at)
		switch {
		case ctx.Err() != nil:
			skip(reasonShutdown)
			return
		case err != nil:
			skip(reasonNoClaim)
			st.lg.Warn("defrag slot not claimed; another member may take it", zap.Time("slot", at), zap.Error(err))
			return
		case !won:
			skip(reasonClaimed)
			st.lg.Debug("defrag slot taken by another member", zap.Time("slot", at))
			return
		}
	}
	start := s.cfg.Now()
	unlock, err := lockDefrag(ctx, st.Options, st.lg)
	switch {
	case errors.Is(err, errDefragRunning):
		skip(reasonRunning)
		st.lg.Warn("defrag run skipped: another rolling defrag of the cluster is running", zap.Time("slot", at))
		return
	case err != nil && ctx.Err() != nil:
		skip(reasonShutdown)
		return
	case err == nil:
		defer unlock()
	}
	m.lastAttempt.WithLabelValues(st.Name).Set(unix(start))
	st.lg.Info("rolling defrag started", zap.Time("slot", at))
	var res *maintenance.Result
	if err == nil {
		o := st.Options
		o.Logger = st.lg
		o.Events = func(ev maintenance.Event) {
			if ev.Event != "plan" {
				st.lg.Info("defrag "+ev.Event, zap.String("member", ev.Member), zap.String("detail", ev.Detail))
			}
		}
		res, err = maintenance.Run(ctx, o)
	}
	took := s.cfg.Now().Sub(start)
	m.lastDuration.WithLabelValues(st.Name).Set(took.Seconds())
	if res != nil {
		for _, mr := range res.Members {
			m.members.WithLabelValues(st.Name, defragOutcomes[mr.Outcome]).Inc()
		}
		m.reclaimed.WithLabelValues(st.Name).Add(float64(res.Reclaimed))
	}
	if err != nil && ctx.Err() != nil {
		st.lg.Info("rolling defrag stopped by shutdown, between members", zap.Error(err), zap.Duration("took", took))
		return
	}
	st.mu.Lock()
	if err != nil {
		st.failures++
	} else {
		st.failures = 0
	}
	failures := st.failures
	st.mu.Unlock()
	m.consecutiveFailures.WithLabelValues(st.Name).Set(float64(failures))
	if err != nil {
		m.runs.WithLabelValues(st.Name, resultFailure).Inc()
		st.lg.Error("rolling defrag failed", zap.Time("slot", at), zap.Error(err), zap.Int("consecutive-failures", failures), zap.Duration("took", took))
		return
	}
	m.runs.WithLabelValues(st.Name, resultSuccess).Inc()
	m.lastSuccess.WithLabelValues(st.Name).Set(unix(s.cfg.Now()))
	defragmented := 0
	for _, mr := range res.Members {
		if mr.Outcome == maintenance.OutcomeDefragmented {
			defragmented++
		}
	}
	st.lg.Info("rolling defrag done", zap.Time("slot", at), zap.Int("defragmented", defragmented), zap.Int("members", len(res.Plan)),
		zap.Int64("reclaimed-bytes", res.Reclaimed), zap.String("compaction", res.Compaction), zap.Duration("took", took))
}

// logNextDefrag logs and publishes when the defrag job runs next.
func (s *Scheduler) logNextDefrag(st *defragState) {
	next := st.Cron.Next(s.cfg.Now())
	s.defragMetrics.nextRun.WithLabelValues(st.Name).Set(unix(next))
	st.lg.Debug("next defrag run", zap.Time("next-run", next))
}
