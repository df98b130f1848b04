package pitr

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a streamer's Prometheus metrics, in the schedule's
// namespace and with its backup_job label, so that one scrape shows a
// job's snapshots and its log side by side.
type Metrics struct {
	lastRevision, lastFlush, lagRevisions, lagSeconds, streaming prometheus.Gauge
	segments, bytes, gaps, flushFailures                         prometheus.Counter

	mu    sync.Mutex
	state LogState
}

// LogState is what a process knows of its log, for a health check.
type LogState struct {
	// Streaming says whether this process streams the log now; Since is
	// when that last changed (zero: it never streamed).
	Streaming bool
	Since     time.Time
	// Gap is the last gap this process recorded; nil when none.
	Gap *GapRecord
}

// State returns the log's state as the streamer last set it.
func (m *Metrics) State() LogState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

func (m *Metrics) setStreaming(on bool, at time.Time) {
	m.mu.Lock()
	m.state.Streaming, m.state.Since = on, at
	m.mu.Unlock()
	m.streaming.Set(map[bool]float64{true: 1}[on])
}

func (m *Metrics) gapRecorded(g GapRecord) {
	m.mu.Lock()
	m.state.Gap = &g
	m.mu.Unlock()
	m.gaps.Inc()
}

// NewMetrics makes the metrics of job's log and registers them with reg
// (nil registers nothing).
func NewMetrics(reg prometheus.Registerer, job string) *Metrics {
	labels := prometheus.Labels{"backup_job": job}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "etcdops_schedule", Name: name, Help: help, ConstLabels: labels})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "etcdops_schedule", Name: name, Help: help, ConstLabels: labels})
	}
	m := &Metrics{
		lastRevision:  gauge("pitr_last_flushed_revision", "Last etcd revision of the job's log in the bucket."),
		lastFlush:     gauge("pitr_last_flush_timestamp_seconds", "When the job's log last reached the bucket (or was known to be there, at start)."),
		lagRevisions:  gauge("pitr_lag_revisions", "Revisions the cluster is ahead of the job's log in the bucket."),
		lagSeconds:    gauge("pitr_lag_seconds", "Age of the oldest change received and not yet in the bucket; 0 when every change is."),
		streaming:     gauge("pitr_streaming", "1 while this process streams the job's log (of a cluster's members, one does)."),
		segments:      counter("pitr_segments_total", "Log segments written."),
		bytes:         counter("pitr_bytes_total", "Bytes of log segments written, as stored."),
		gaps:          counter("pitr_gaps_total", "Gaps recorded in the log (the watch could not resume: compacted)."),
		flushFailures: counter("pitr_flush_failures_total", "Flushes of the log that failed (retried)."),
	}
	if reg != nil {
		reg.MustRegister(m.lastRevision, m.lastFlush, m.lagRevisions, m.lagSeconds, m.streaming, m.segments, m.bytes, m.gaps, m.flushFailures)
	}
	return m
}

func (m *Metrics) flushed(rev int64, at time.Time) {
	m.lastRevision.Set(float64(rev))
	m.lastFlush.Set(float64(at.UnixNano()) / 1e9)
}

func (m *Metrics) segment(size int64) {
	m.segments.Inc()
	m.bytes.Add(float64(size))
}

// lag publishes how far the log is behind: cluster is the cluster's
// revision as last seen, oldest the receipt of the oldest unflushed change.
func (m *Metrics) lag(cluster, flushed int64, oldest, now time.Time) {
	m.lagRevisions.Set(float64(max(cluster-flushed, 0)))
	if oldest.IsZero() {
		m.lagSeconds.Set(0)
		return
	}
	m.lagSeconds.Set(now.Sub(oldest).Seconds())
}
