package health

import (
	"fmt"
	"io"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// WritePrometheus writes the report in Prometheus' text exposition format
// (through prometheus/client_golang, sorted by metric name), for
// node_exporter's textfile collector. Every metric is a gauge named
// etcdops_*; README.md lists them. Per-endpoint metrics carry an endpoint
// label; an endpoint that did not answer has only etcdops_endpoint_up 0 and
// etcdops_endpoint_healthy 0.
func WritePrometheus(w io.Writer, r *Report, v Verdict) error {
	p := &promWriter{reg: prometheus.NewPedanticRegistry()}
	s := v.Summary

	p.family("etcdops_health_status", "Verdict of the check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the exit code).",
		sample{value: float64(v.Status)})
	p.family("etcdops_health_check_timestamp_seconds", "When the check started, in seconds since the epoch.",
		sample{value: float64(r.Time.UnixMilli()) / 1000})
	p.family("etcdops_health_check_duration_seconds", "How long the check took.", sample{value: r.Duration.Seconds()})
	var reasons []sample
	for _, st := range []Status{Warning, Critical, Unknown} {
		n := 0
		for _, reason := range v.Reasons {
			if reason.Status == st {
				n++
			}
		}
		reasons = append(reasons, sample{labels: []string{"status", st.String()}, value: float64(n)})
	}
	p.family("etcdops_health_reasons", "Findings of the verdict, by the status each one calls for.", reasons...)

	p.family("etcdops_cluster_voters", "Voting members in the member list.", sample{value: float64(s.Voters)})
	p.family("etcdops_cluster_learners", "Learners in the member list.", sample{value: float64(s.Learners)})
	p.family("etcdops_cluster_quorum", "Voting members needed for quorum.", sample{value: float64(s.Quorum)})
	p.family("etcdops_cluster_voters_up", "Voting members that completed a linearizable read.", sample{value: float64(s.VotersUp)})
	p.family("etcdops_cluster_has_leader", "1 if every reachable member follows the same leader.", sample{value: bool01(s.Leader != 0)})
	p.family("etcdops_cluster_raft_index_lag", "Largest raft index difference between two reachable members.", sample{value: float64(s.RaftIndexLag)})
	p.family("etcdops_cluster_versions", "Distinct etcd versions among the reachable members.", sample{value: float64(len(s.Versions))})
	var alarms []sample
	for _, a := range r.Alarms {
		alarms = append(alarms, sample{labels: []string{"member_id", hexID(a.MemberID), "alarm", a.Type}, value: 1})
	}
	p.family("etcdops_cluster_alarm", "1 for each active alarm, by member and alarm type.", alarms...)

	var members []sample
	for _, m := range s.Members {
		members = append(members, sample{labels: []string{"member_id", hexID(m.ID), "name", m.Name, "state", m.State,
			"learner", strconv.FormatBool(m.IsLearner)}, value: bool01(m.Up)})
	}
	p.family("etcdops_member_up", "1 if the member answered and completed its health read, by member; state says more.", members...)

	perEndpoint := []struct {
		name, help string
		value      func(e *Endpoint) float64
	}{
		{"etcdops_endpoint_up", "1 if the endpoint answered a status request.", func(e *Endpoint) float64 { return bool01(e.Reachable) }},
		{"etcdops_endpoint_healthy", "1 if healthy by etcdctl endpoint health's rules (read through raft, no alarm).",
			func(e *Endpoint) float64 { return bool01(e.Healthy) }},
		{"etcdops_endpoint_rtt_seconds", "Round trip of the health read.", func(e *Endpoint) float64 { return e.RTT.Seconds() }},
		{"etcdops_endpoint_db_size_bytes", "Size of the backend database.", func(e *Endpoint) float64 { return float64(e.DBSize) }},
		{"etcdops_endpoint_db_size_in_use_bytes", "Size of the backend database in use.", func(e *Endpoint) float64 { return float64(e.DBSizeInUse) }},
		{"etcdops_endpoint_db_quota_bytes", "Backend quota (negative when off).", func(e *Endpoint) float64 { return float64(e.DBQuota) }},
		{"etcdops_endpoint_db_free_ratio", "Free pages of the backend database divided by its size: what a defragmentation reclaims.",
			func(e *Endpoint) float64 { return freeFraction(e) }},
		{"etcdops_endpoint_is_leader", "1 if the member is the leader.", func(e *Endpoint) float64 { return bool01(e.IsLeader) }},
		{"etcdops_endpoint_is_learner", "1 if the member is a learner.", func(e *Endpoint) float64 { return bool01(e.IsLearner) }},
		{"etcdops_endpoint_raft_term", "Raft term of the member.", func(e *Endpoint) float64 { return float64(e.RaftTerm) }},
		{"etcdops_endpoint_raft_index", "Raft committed index of the member.", func(e *Endpoint) float64 { return float64(e.RaftIndex) }},
		{"etcdops_endpoint_raft_applied_index", "Raft applied index of the member.", func(e *Endpoint) float64 { return float64(e.RaftAppliedIndex) }},
	}
	for i, m := range perEndpoint {
		var samples []sample
		for k := range r.Endpoints {
			e := &r.Endpoints[k]
			if e.Reachable || i < 2 {
				samples = append(samples, sample{labels: []string{"endpoint", e.Endpoint}, value: m.value(e)})
			}
		}
		p.family(m.name, m.help, samples...)
	}
	var info, quota []sample
	for _, e := range r.Endpoints {
		if !e.Reachable {
			continue
		}
		info = append(info, sample{labels: []string{"endpoint", e.Endpoint, "member_id", hexID(e.MemberID), "name", e.Name,
			"version", e.Version, "storage_version", e.StorageVersion}, value: 1})
		if pct, ok := quotaPercent(e.DBSize, e.DBQuota); ok {
			quota = append(quota, sample{labels: []string{"endpoint", e.Endpoint}, value: pct / 100})
		}
	}
	p.family("etcdops_endpoint_info", "1 for each reachable endpoint, with its member and versions.", info...)
	p.family("etcdops_endpoint_db_quota_used_ratio", "Database size divided by the quota.", quota...)

	if b := r.Backup; b != nil {
		labels := []string{"tag", b.Tag}
		p.family("etcdops_backup_found", "1 if a complete snapshot was found, 0 if none, -1 if the bucket could not be listed.",
			sample{labels: labels, value: backupFound(b)})
		if age, ok := r.backupAge(); ok {
			p.family("etcdops_backup_newest_timestamp_seconds", "When the newest complete snapshot was taken.",
				sample{labels: labels, value: float64(b.Time.Unix())})
			p.family("etcdops_backup_age_seconds", "Age of the newest backup: the newest complete snapshot, or the end of its tag's point-in-time log when that was written later.", sample{labels: labels, value: age.Seconds()})
		}
	}
	if err := p.write(w); err != nil {
		return fmt.Errorf("write prometheus: %w", err)
	}
	return nil
}

func backupFound(b *Backup) float64 {
	switch {
	case b.Error != "":
		return -1
	case b.Newest == "":
		return 0
	default:
		return 1
	}
}

type sample struct {
	// labels are name, value pairs.
	labels []string
	value  float64
}

// promWriter collects gauges into a registry of prometheus/client_golang,
// which writes them in the exposition format.
type promWriter struct {
	reg *prometheus.Registry
	err error
}

// family registers a gauge with its help and samples; nothing when it has
// none. Every sample of a family has the same label names.
func (p *promWriter) family(name, help string, samples ...sample) {
	if len(samples) == 0 || p.err != nil {
		return
	}
	var names []string
	for i := 0; i+1 < len(samples[0].labels); i += 2 {
		names = append(names, samples[0].labels[i])
	}
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, names)
	if p.err = p.reg.Register(g); p.err != nil {
		return
	}
	for _, s := range samples {
		var values []string
		for i := 1; i < len(s.labels); i += 2 {
			values = append(values, s.labels[i])
		}
		m, err := g.GetMetricWithLabelValues(values...)
		if err != nil {
			p.err = err
			return
		}
		m.Set(s.value)
	}
}

// write encodes the registered gauges, sorted by name, to w.
func (p *promWriter) write(w io.Writer) error {
	if p.err != nil {
		return p.err
	}
	mfs, err := p.reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
