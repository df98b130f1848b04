// Package health checks an etcd cluster: Check gathers a Report from every
// endpoint, Evaluate judges it, and the renderers print both for people and machines.
package health

import (
	"time"
)

// Report is what one check saw. It holds facts only; Evaluate judges them.
type Report struct {
	// Time is when the check started; backup ages are measured from it.
	Time time.Time
	// Duration is how long the whole check took.
	Duration time.Duration
	// Endpoints holds every endpoint checked, in the order given (or
	// discovered), reachable or not.
	Endpoints []Endpoint
	// Members is the member list as the first member that answered reports
	// it (the leader's when it answered), or nil when none answered.
	Members []Member
	// ClusterID is from the first status answered, or 0.
	ClusterID uint64
	// Alarms are the cluster's active alarms, as the reachable members
	// report them in their status.
	Alarms []Alarm
	// AlarmsKnown is false when no member answered, so the alarms are unknown.
	AlarmsKnown bool
	// DiscoveryError says why --cluster could not read the member list; the
	// given endpoints were checked instead.
	DiscoveryError string
	// Backup is the newest snapshot found, or nil when backups were not checked.
	Backup *Backup
}

// Endpoint is what one endpoint answered.
type Endpoint struct {
	Endpoint string
	// Reachable: the member answered a status request.
	Reachable bool
	// Healthy follows `etcdctl endpoint health`: the health read succeeded
	// (permission denied counts as success: the request went through
	// consensus) and no alarm is active in the cluster. Learners cannot
	// serve linearizable reads, so theirs is a serializable read.
	Healthy bool
	// QuorumRead: a linearizable read through raft succeeded at this member,
	// which proves that the cluster had a leader and quorum.
	QuorumRead bool
	// RTT is the round trip of the health read.
	RTT time.Duration

	MemberID       uint64
	Name           string
	Version        string
	StorageVersion string
	DBSize         int64
	DBSizeInUse    int64
	// DBQuota is the backend quota in bytes; negative when the quota is off.
	DBQuota          int64
	Leader           uint64
	IsLeader         bool
	IsLearner        bool
	RaftTerm         uint64
	RaftIndex        uint64
	RaftAppliedIndex uint64
	// Alarms are the active alarms raised by this member.
	Alarms []string
	// Errors are the member's own status errors ("active alarms: NOSPACE"
	// when the cluster has any) and those of each request that failed.
	Errors []string
}

// Member is one entry of the member list.
type Member struct {
	ID         uint64
	Name       string
	PeerURLs   []string
	ClientURLs []string
	IsLearner  bool
}

// Started reports whether the member ever joined: a member added but never
// started has no name and no client URLs.
func (m Member) Started() bool { return m.Name != "" || len(m.ClientURLs) > 0 }

// Alarm is an active alarm of one member.
type Alarm struct {
	MemberID uint64
	// Type is NOSPACE, CORRUPT or another name of etcd's alarm types.
	Type string
}

// Backup is the result of looking for the newest snapshot.
type Backup struct {
	// URL is the bucket URL, without credentials.
	URL string
	Tag string
	// Newest is the newest snapshot's object name, "" when none was found.
	Newest string
	Time   time.Time
	// Log, when the newest snapshot's tag has a point-in-time log, is the
	// log's end: it counts as the newest backup when it is newer.
	Log *LogEnd
	// Error says why the bucket could not be listed.
	Error string
}

// backupAge is how old the newest snapshot was when the check started.
func (r *Report) backupAge() (time.Duration, bool) {
	if r.Backup == nil || r.Backup.Newest == "" {
		return 0, false
	}
	return r.Time.Sub(r.Backup.newest()), true
}

// newest is when the newest backup was taken: the newest snapshot, or the
// end of its log when that was written later.
func (b *Backup) newest() time.Time {
	if b.Log != nil && b.Log.Written.After(b.Time) {
		return b.Log.Written
	}
	return b.Time
}

// quotaPercent returns size as a percentage of quota, and false when
// there is no quota to compare with.
func quotaPercent(size, quota int64) (float64, bool) {
	if quota <= 0 {
		return 0, false
	}
	return float64(size) * 100 / float64(quota), true
}

// freeFraction is the fraction of e's database file that is free pages.
func freeFraction(e *Endpoint) float64 {
	if e.DBSize <= 0 {
		return 0
	}
	return float64(max(e.DBSize-e.DBSizeInUse, 0)) / float64(e.DBSize)
}
