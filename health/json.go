package health

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// SchemaVersion is the version of the JSON report, described by the JSON
// Schema in report.schema.json. Fields may be added within a version;
// none is removed or changes meaning.
const SchemaVersion = 1

// Schema is the JSON Schema of the report WriteJSON writes.
//
//go:embed report.schema.json
var Schema []byte

// The JSON report. Member and cluster IDs are hexadecimal strings as
// etcdctl prints them ("" when unknown), so that no JSON reader rounds them.
type jsonReport struct {
	SchemaVersion   int            `json:"schema_version"`
	Time            string         `json:"time"`
	DurationSeconds float64        `json:"duration_seconds"`
	Status          string         `json:"status"`
	ExitCode        int            `json:"exit_code"`
	Reasons         []jsonReason   `json:"reasons"`
	Thresholds      jsonThresholds `json:"thresholds"`
	Cluster         jsonCluster    `json:"cluster"`
	Members         []jsonMember   `json:"members"`
	Endpoints       []jsonEndpoint `json:"endpoints"`
	Backup          *jsonBackup    `json:"backup"`
}

type jsonReason struct {
	Status  string `json:"status"`
	Check   string `json:"check"`
	Message string `json:"message"`
}

type jsonThresholds struct {
	WarnDBPercent       float64 `json:"warn_db_percent"`
	CritDBPercent       float64 `json:"crit_db_percent"`
	WarnRaftLag         uint64  `json:"warn_raft_lag"`
	MaxBackupAgeSeconds float64 `json:"max_backup_age_seconds"`
}

type jsonCluster struct {
	ClusterID         string      `json:"cluster_id"`
	Voters            int         `json:"voters"`
	Learners          int         `json:"learners"`
	Quorum            int         `json:"quorum"`
	VotersUp          int         `json:"voters_up"`
	LeaderID          string      `json:"leader_id"`
	LeaderName        string      `json:"leader_name"`
	RaftIndexLag      uint64      `json:"raft_index_lag"`
	MaxDBQuotaPercent float64     `json:"max_db_quota_percent"`
	Versions          []string    `json:"versions"`
	Alarms            []jsonAlarm `json:"alarms"`
	AlarmsKnown       bool        `json:"alarms_known"`
	DiscoveryError    string      `json:"discovery_error"`
}

type jsonAlarm struct {
	MemberID   string `json:"member_id"`
	MemberName string `json:"member_name"`
	Alarm      string `json:"alarm"`
}

type jsonMember struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
	IsLearner  bool     `json:"is_learner"`
	State      string   `json:"state"`
	Up         bool     `json:"up"`
	Endpoint   string   `json:"endpoint"`
}

type jsonEndpoint struct {
	Endpoint                string   `json:"endpoint"`
	Reachable               bool     `json:"reachable"`
	Healthy                 bool     `json:"healthy"`
	QuorumRead              bool     `json:"quorum_read"`
	RTTSeconds              *float64 `json:"rtt_seconds"`
	MemberID                string   `json:"member_id"`
	Name                    string   `json:"name"`
	Version                 string   `json:"version"`
	StorageVersion          string   `json:"storage_version"`
	DBSizeBytes             int64    `json:"db_size_bytes"`
	DBSizeInUseBytes        int64    `json:"db_size_in_use_bytes"`
	DBQuotaBytes            int64    `json:"db_quota_bytes"`
	DBSizeQuotaPercent      *float64 `json:"db_size_quota_percent"`
	DBSizeInUseQuotaPercent *float64 `json:"db_size_in_use_quota_percent"`
	LeaderID                string   `json:"leader_id"`
	IsLeader                bool     `json:"is_leader"`
	IsLearner               bool     `json:"is_learner"`
	RaftTerm                uint64   `json:"raft_term"`
	RaftIndex               uint64   `json:"raft_index"`
	RaftAppliedIndex        uint64   `json:"raft_applied_index"`
	Alarms                  []string `json:"alarms"`
	Errors                  []string `json:"errors"`
}

type jsonBackup struct {
	URL        string   `json:"url"`
	Tag        string   `json:"tag"`
	Newest     string   `json:"newest"`
	Time       *string  `json:"time"`
	AgeSeconds *float64 `json:"age_seconds"`
	Log        *jsonLog `json:"log"`
	Error      string   `json:"error"`
}

type jsonLog struct {
	Segment      string `json:"segment"`
	LastRevision int64  `json:"last_revision"`
	Written      string `json:"written"`
}

// WriteJSON writes the report as one indented JSON document with every
// endpoint, reachable or not.
func WriteJSON(w io.Writer, r *Report, v Verdict, t Thresholds) error {
	s := v.Summary
	doc := jsonReport{
		SchemaVersion:   SchemaVersion,
		Time:            r.Time.UTC().Format(time.RFC3339Nano),
		DurationSeconds: r.Duration.Seconds(),
		Status:          v.Status.String(),
		ExitCode:        int(v.Status),
		Reasons:         []jsonReason{},
		Thresholds: jsonThresholds{WarnDBPercent: t.WarnDBPercent, CritDBPercent: t.CritDBPercent,
			WarnRaftLag: t.WarnRaftLag, MaxBackupAgeSeconds: t.MaxBackupAge.Seconds()},
		Cluster: jsonCluster{
			ClusterID: hexID(r.ClusterID), Voters: s.Voters, Learners: s.Learners, Quorum: s.Quorum, VotersUp: s.VotersUp,
			LeaderID: hexID(s.Leader), RaftIndexLag: s.RaftIndexLag, MaxDBQuotaPercent: s.MaxDBPercent,
			Versions: nonNil(s.Versions), Alarms: []jsonAlarm{}, AlarmsKnown: r.AlarmsKnown, DiscoveryError: r.DiscoveryError,
		},
		Members:   []jsonMember{},
		Endpoints: []jsonEndpoint{},
	}
	if s.Leader != 0 {
		doc.Cluster.LeaderName = memberName(v, s.Leader)
	}
	for _, reason := range v.Reasons {
		doc.Reasons = append(doc.Reasons, jsonReason{Status: reason.Status.String(), Check: reason.Check, Message: reason.Message})
	}
	for _, a := range r.Alarms {
		name := memberName(v, a.MemberID)
		if name == hexID(a.MemberID) {
			name = ""
		}
		doc.Cluster.Alarms = append(doc.Cluster.Alarms, jsonAlarm{MemberID: hexID(a.MemberID), MemberName: name, Alarm: a.Type})
	}
	for _, m := range s.Members {
		jm := jsonMember{ID: hexID(m.ID), Name: m.Name, PeerURLs: nonNil(m.PeerURLs), ClientURLs: nonNil(m.ClientURLs),
			IsLearner: m.IsLearner, State: m.State, Up: m.Up}
		if m.Endpoint != nil {
			jm.Endpoint = m.Endpoint.Endpoint
		}
		doc.Members = append(doc.Members, jm)
	}
	for _, e := range r.Endpoints {
		doc.Endpoints = append(doc.Endpoints, jsonEndpointOf(e))
	}
	if b := r.Backup; b != nil {
		jb := &jsonBackup{URL: b.URL, Tag: b.Tag, Newest: b.Newest, Error: b.Error}
		if age, ok := r.backupAge(); ok {
			ts := b.Time.UTC().Format(time.RFC3339)
			secs := age.Seconds()
			jb.Time, jb.AgeSeconds = &ts, &secs
		}
		if l := b.Log; l != nil {
			jb.Log = &jsonLog{Segment: l.Segment, LastRevision: l.Revision, Written: l.Written.UTC().Format(time.RFC3339)}
		}
		doc.Backup = jb
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

func jsonEndpointOf(e Endpoint) jsonEndpoint {
	je := jsonEndpoint{
		Endpoint: e.Endpoint, Reachable: e.Reachable, Healthy: e.Healthy, QuorumRead: e.QuorumRead,
		MemberID: hexID(e.MemberID), Name: e.Name, Version: e.Version, StorageVersion: e.StorageVersion,
		DBSizeBytes: e.DBSize, DBSizeInUseBytes: e.DBSizeInUse, DBQuotaBytes: e.DBQuota,
		LeaderID: hexID(e.Leader), IsLeader: e.IsLeader, IsLearner: e.IsLearner,
		RaftTerm: e.RaftTerm, RaftIndex: e.RaftIndex, RaftAppliedIndex: e.RaftAppliedIndex,
		Alarms: nonNil(e.Alarms), Errors: nonNil(e.Errors),
	}
	if e.Reachable {
		rtt := e.RTT.Seconds()
		je.RTTSeconds = &rtt
		if p, ok := quotaPercent(e.DBSize, e.DBQuota); ok {
			je.DBSizeQuotaPercent = &p
		}
		if p, ok := quotaPercent(e.DBSizeInUse, e.DBQuota); ok {
			je.DBSizeInUseQuotaPercent = &p
		}
	}
	return je
}

// hexID prints a member or cluster ID as etcdctl does, "" for 0 (unknown).
func hexID(id uint64) string {
	if id == 0 {
		return ""
	}
	return fmt.Sprintf("%x", id)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
