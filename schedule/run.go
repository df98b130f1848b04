package schedule

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/restore"
)

// heartbeatTimeout bounds one heartbeat request.
const heartbeatTimeout = 10 * time.Second

// runBackup is one run of a job, for the slot at: after any jitter, a
// backup (save, then retention), its metrics, its log lines and its
// heartbeat. A run cut short by shutdown counts as neither success nor
// failure.
func (s *Scheduler) runBackup(ctx context.Context, st *jobState, at time.Time) {
	m := s.metrics
	if d := Jitter(st.Jitter, rand.Float64()); d > 0 {
		st.lg.Info("waiting before the run (jitter)", zap.Duration("delay", d))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			m.skips.WithLabelValues(st.Name, reasonShutdown).Inc()
			return
		case <-t.C:
		}
	}
	if st.Claim != nil {
		if !s.claim(ctx, st, at) {
			s.follow(ctx, st, at)
			return
		}
		if !s.waitUpload(ctx, st) {
			return
		}
		defer func() { <-st.uploading }()
	}
	start := s.cfg.Now()
	m.lastAttempt.WithLabelValues(st.Name).Set(unix(start))
	cfg := st.Save
	cfg.At, cfg.Logger = at, st.lg
	res, err := backup.Backup(ctx, st.store, cfg, st.Policy)
	took := s.cfg.Now().Sub(start)
	m.lastDuration.WithLabelValues(st.Name).Set(took.Seconds())
	defer s.logNext(st)
	if err != nil && ctx.Err() != nil {
		st.lg.Info("run aborted by shutdown; nothing of it is in the bucket", zap.Error(err))
		return
	}
	if errors.Is(err, backup.ErrNameTaken) {
		// Another run (a catch-up, another scheduler) saved this slot.
		st.lg.Info("slot already saved; nothing to do", zap.Time("slot", at))
		s.newest(ctx, st)
		return
	}
	st.mu.Lock()
	if err != nil {
		st.failures++
	} else {
		st.failures = 0
		st.lastSuccess = res.Manifest.Time
		st.tag = res.Manifest.Tag
	}
	failures := st.failures
	st.mu.Unlock()
	m.consecutiveFailures.WithLabelValues(st.Name).Set(float64(failures))
	if err != nil {
		m.runs.WithLabelValues(st.Name, resultFailure).Inc()
		st.lg.Error("backup failed", zap.Error(err), zap.Int("consecutive-failures", failures), zap.Duration("took", took))
		s.heartbeat(ctx, st, st.HeartbeatFail, kindFailure)
		return
	}
	m.runs.WithLabelValues(st.Name, resultSuccess).Inc()
	m.lastSuccess.WithLabelValues(st.Name).Set(unix(res.Manifest.Time))
	m.lastSize.WithLabelValues(st.Name).Set(float64(res.Manifest.StoredSize))
	m.lastRevision.WithLabelValues(st.Name).Set(float64(res.Manifest.Revision))
	m.pruned.WithLabelValues(st.Name).Add(float64(res.Pruned))
	if res.PruneErr != nil {
		m.pruneFailures.WithLabelValues(st.Name).Inc()
	}
	st.lg.Info("backup done", zap.String("name", res.Manifest.Name), zap.Int64("revision", res.Manifest.Revision),
		zap.Int64("stored-bytes", res.Manifest.StoredSize), zap.Int("pruned", res.Pruned), zap.Duration("took", took))
	s.heartbeat(ctx, st, st.Heartbeat, kindSuccess)
}

// claim reports whether this process takes the slot at of the job.
func (s *Scheduler) claim(ctx context.Context, st *jobState, at time.Time) bool {
	tag, err := s.tagOf(ctx, st)
	won := false
	if err == nil {
		won, err = st.Claim(ctx, tag, at)
	}
	switch {
	case ctx.Err() != nil:
		s.metrics.skips.WithLabelValues(st.Name, reasonShutdown).Inc()
	case err != nil:
		s.metrics.skips.WithLabelValues(st.Name, reasonNoClaim).Inc()
		st.lg.Warn("slot not claimed; another member may take it", zap.Time("slot", at), zap.Error(err))
	case !won:
		s.metrics.skips.WithLabelValues(st.Name, reasonClaimed).Inc()
		st.lg.Debug("slot taken by another member", zap.Time("slot", at))
	}
	if won && err == nil {
		return true
	}
	s.logNext(st)
	return false
}

// Bounds of follow's look at the bucket: the first wait, doubled up to
// the last.
const (
	followFirst = 250 * time.Millisecond
	followMax   = time.Minute
)

// follow is what a member does for a slot it did not take: it looks in the
// bucket, with backoff, for the snapshot of the slot (or a newer one) that
// another member saves, for up to one interval (then the next slot takes
// over), so that every member exports the cluster's last success, not its
// own.
func (s *Scheduler) follow(ctx context.Context, st *jobState, at time.Time) {
	window := time.NewTimer(max(st.Cron.Interval(at), time.Second))
	defer window.Stop()
	for wait := followFirst; ; wait = min(2*wait, followMax) {
		if newest := s.newest(ctx, st); !newest.Before(at) {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-window.C:
		case <-t.C:
			continue
		}
		t.Stop()
		return
	}
}

// waitUpload takes the upload token of a job whose slots are claimed,
// waiting up to one interval for the member's previous upload.
func (s *Scheduler) waitUpload(ctx context.Context, st *jobState) bool {
	t := time.NewTimer(st.Cron.Interval(s.cfg.Now()))
	defer t.Stop()
	select {
	case st.uploading <- struct{}{}:
		return true
	case <-ctx.Done():
		s.metrics.skips.WithLabelValues(st.Name, reasonShutdown).Inc()
	case <-t.C:
		s.metrics.skips.WithLabelValues(st.Name, reasonRunning).Inc()
		st.lg.Warn("run skipped: the previous upload is still going", zap.String("reason", "claimed slot not uploaded in time"))
	}
	s.logNext(st)
	return false
}

// logNext logs and publishes when the job runs next.
func (s *Scheduler) logNext(st *jobState) {
	next := st.Cron.Next(s.cfg.Now())
	s.metrics.nextRun.WithLabelValues(st.Name).Set(unix(next))
	st.lg.Info("next run", zap.Time("next-run", next))
}

// runVerify restores the job's newest snapshot into a temporary member and
// checks it against its manifest.
func (s *Scheduler) runVerify(ctx context.Context, st *jobState) {
	result := resultFailure
	defer func() {
		if ctx.Err() == nil {
			s.metrics.verifies.WithLabelValues(st.Name, result).Inc()
		}
	}()
	tag, err := s.tagOf(ctx, st)
	if err != nil {
		st.lg.Error("restore test: cannot tell the job's tag", zap.Error(err))
		return
	}
	snap, err := st.store.Find(ctx, "latest", tag)
	if err != nil {
		st.lg.Error("restore test", zap.Error(err))
		return
	}
	vcfg := s.cfg.Verify
	vcfg.RestoreTest, vcfg.Logger, vcfg.Progress = restore.Trial, st.lg, nil
	res, err := backup.Verify(ctx, st.store, snap, vcfg)
	if err != nil {
		st.lg.Error("restore test failed", zap.String("name", snap.Key()), zap.Error(err))
		return
	}
	if !res.Restored {
		st.lg.Error("restore test not done", zap.String("name", snap.Key()), zap.String("note", res.Note))
		return
	}
	result = resultSuccess
	s.metrics.lastVerifySuccess.WithLabelValues(st.Name).Set(unix(s.cfg.Now()))
	st.lg.Info("restore test passed", zap.String("name", snap.Key()), zap.Int64("revision", res.Revision), zap.Int64("keys", res.Keys))
}

// heartbeat requests rawURL with a POST (what healthchecks.io and a
// Prometheus pushgateway accept). A failure is logged and counted; it
// never fails the run. The URL itself is a secret of sorts (its path is
// the check's key): only its host is logged.
func (s *Scheduler) heartbeat(ctx context.Context, st *jobState, rawURL, kind string) {
	if rawURL == "" {
		return
	}
	host := ""
	if u, err := url.Parse(rawURL); err == nil {
		host = u.Host
	}
	if err := post(ctx, rawURL); err != nil {
		s.metrics.heartbeatFailures.WithLabelValues(st.Name, kind).Inc()
		st.lg.Warn("heartbeat failed", zap.String("kind", kind), zap.String("host", host), zap.Error(err))
		return
	}
	st.lg.Debug("heartbeat sent", zap.String("kind", kind), zap.String("host", host))
}

func post(ctx context.Context, rawURL string) error {
	ctx, cancel := context.WithTimeout(ctx, heartbeatTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, http.NoBody)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// The error quotes the URL; keep only what went wrong.
		if ue, ok := err.(*url.Error); ok {
			return ue.Err
		}
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

func promhttpHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
