package health

import (
	"fmt"
	"math"
	"time"
)

// Status is a verdict in the terms monitoring systems use. Its value is
// the exit code of `etcdops health`, as a Nagios plugin's.
type Status int

// Statuses, in the order of their exit codes.
const (
	OK Status = iota
	Warning
	Critical
	Unknown
)

func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case Warning:
		return "WARNING"
	case Critical:
		return "CRITICAL"
	default:
		return "UNKNOWN"
	}
}

// severity orders statuses from best to worst: OK, WARNING, UNKNOWN,
// CRITICAL (a cluster known to be down outranks one that could not be judged).
func (s Status) severity() int {
	return [...]int{OK: 0, Warning: 1, Unknown: 2, Critical: 3}[s]
}

// Thresholds are the limits the verdict applies.
type Thresholds struct {
	// WarnDBPercent and CritDBPercent are the database size, as a percentage
	// of the quota, at which a member is a warning and critical.
	WarnDBPercent float64
	CritDBPercent float64
	// WarnRaftLag is how many raft entries a member may be behind the most
	// advanced one before it is a warning.
	WarnRaftLag uint64
	// MaxBackupAge is the age the newest snapshot may have; 0 leaves the age
	// unjudged (a missing snapshot is still a warning).
	MaxBackupAge time.Duration
}

// DefaultThresholds returns the thresholds used when none are given.
func DefaultThresholds() Thresholds {
	return Thresholds{WarnDBPercent: 80, CritDBPercent: 95, WarnRaftLag: 1000}
}

// Field names a threshold. The command line maps each to its flag.
type Field string

// The thresholds a ThresholdError can be about.
const (
	FieldWarnDBPercent Field = "warn db percent" // Thresholds.WarnDBPercent
	FieldCritDBPercent Field = "crit db percent" // Thresholds.CritDBPercent
	FieldMaxBackupAge  Field = "max backup age"  // Thresholds.MaxBackupAge
)

// ThresholdError is a threshold that makes no sense: Field holds Value,
// which is wrong as Reason says; when With is set, Reason compares it with
// that threshold, which holds WithValue.
type ThresholdError struct {
	Field, With              Field
	Value, Reason, WithValue string
}

func (e *ThresholdError) Error() string {
	if e.With != "" {
		return fmt.Sprintf("%s %s: %s %s %s", e.Field, e.Value, e.Reason, e.With, e.WithValue)
	}
	return fmt.Sprintf("%s %s: %s", e.Field, e.Value, e.Reason)
}

// Validate checks that the thresholds make sense; its errors are
// *ThresholdError.
func (t Thresholds) Validate() error {
	for _, p := range []struct {
		field Field
		v     float64
	}{{FieldWarnDBPercent, t.WarnDBPercent}, {FieldCritDBPercent, t.CritDBPercent}} {
		if p.v < 0 || p.v > 100 || math.IsNaN(p.v) {
			return &ThresholdError{Field: p.field, Value: fmt.Sprint(p.v), Reason: "expected a percentage from 0 to 100"}
		}
	}
	if t.WarnDBPercent > t.CritDBPercent {
		return &ThresholdError{Field: FieldWarnDBPercent, Value: fmt.Sprint(t.WarnDBPercent), Reason: "expected at most",
			With: FieldCritDBPercent, WithValue: fmt.Sprint(t.CritDBPercent)}
	}
	if t.MaxBackupAge < 0 {
		return &ThresholdError{Field: FieldMaxBackupAge, Value: t.MaxBackupAge.String(), Reason: "expected a positive duration"}
	}
	return nil
}

// Verdict is the judgement of a report.
type Verdict struct {
	Status Status
	// Reasons say why the status is not OK, in the order the checks run.
	Reasons []Reason
	Summary Summary
}

// Reason is one finding that lowers the status.
type Reason struct {
	Status Status
	// Check names what was judged: endpoints, quorum, members, leader,
	// learners, raft, alarms, db, versions or backups.
	Check   string
	Message string
}

// Summary is what the verdict derives from the report.
type Summary struct {
	// Voters are the voting members, Quorum how many of them must be up,
	// and VotersUp how many completed a linearizable read.
	Voters, Learners, Quorum, VotersUp int
	// Leader is the member every reachable member follows, 0 when they do
	// not agree on one.
	Leader uint64
	// RaftIndexLag is the largest difference of raft index between two
	// reachable members.
	RaftIndexLag uint64
	// MaxDBPercent is the largest database size as a percentage of quota.
	MaxDBPercent float64
	// Versions are the distinct etcd versions of the reachable members.
	Versions []string
	// BackupAge is the age of the newest snapshot, when BackupFound.
	BackupAge   time.Duration
	BackupFound bool
	// Members are the member list with each member's state.
	Members []MemberState
}

// MemberState is a member and what the check found of it.
type MemberState struct {
	Member
	// State is healthy, unhealthy (answers, but a check failed),
	// unreachable, not started, or not checked (none of its client URLs
	// was among the endpoints).
	State string
	// Up: reachable, and its health read succeeded.
	Up bool
	// Endpoint is the checked endpoint that reached it, if any.
	Endpoint *Endpoint
}

// Member states.
const (
	StateHealthy     = "healthy"
	StateUnhealthy   = "unhealthy"
	StateUnreachable = "unreachable"
	StateNotStarted  = "not started"
	StateNotChecked  = "not checked"
)

// Evaluate judges r against t. It is a pure function of its arguments.
func Evaluate(r *Report, t Thresholds) Verdict {
	j := &judge{r: r, t: t}
	j.run()
	return Verdict{Status: j.status, Reasons: j.reasons, Summary: j.sum}
}

// judge accumulates the reasons of one verdict.
type judge struct {
	r       *Report
	t       Thresholds
	status  Status
	reasons []Reason
	sum     Summary
}

func (j *judge) add(s Status, check, format string, args ...any) {
	j.reasons = append(j.reasons, Reason{Status: s, Check: check, Message: fmt.Sprintf(format, args...)})
	if s.severity() > j.status.severity() {
		j.status = s
	}
}
