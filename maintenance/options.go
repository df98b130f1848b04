// Package maintenance keeps a live etcd cluster's databases small: a rolling
// defragmentation, health-gated and leader last, with bounded compaction and NOSPACE disarm.
package maintenance

import (
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/defrag"
	"github.com/etcdops/etcdops/internal/etcdclient"
)

// Conn is what a rolling defrag needs of a connection to the cluster:
// statuses, defragmentation, leadership moves and alarms (Maintenance), the
// member list (Cluster), and for compaction the current revision, the log
// holds and the compaction itself (KV).
type Conn interface {
	clientv3.Maintenance
	clientv3.Cluster
	clientv3.KV
	Close() error
}

// Dialer connects to the given client URLs of the cluster.
type Dialer func(endpoints []string) (Conn, error)

// Options say how Run defragments a cluster.
type Options struct {
	// Client holds the endpoints to start from and the connection settings
	// (TLS, auth, dial timeout) shared with etcdctl.
	Client etcdclient.Config
	// RequestTimeout bounds each short request and each health check.
	RequestTimeout time.Duration
	// Rule says which members to defragment.
	Rule defrag.Rule
	// MemberTimeout bounds the defragmentation of one member and its catch-up
	// afterwards; 0 means MemberTimeoutFor its database size.
	MemberTimeout time.Duration
	// MaxLag is how many entries a member's applied index may be behind the
	// leader's: before each member every member must be within it, and after
	// its defragmentation a member has caught up when it is.
	MaxLag uint64
	// Compact compacts the cluster first, keeping the last KeepRevisions
	// revisions and every revision a point-in-time log still needs.
	Compact       bool
	KeepRevisions int64
	// Disarm disarms NOSPACE alarms after the run when every member is below
	// its quota fraction again.
	Disarm bool
	// ContinueOnError goes on with the next member after one fails.
	ContinueOnError bool
	// DryRun stops after the decision.
	DryRun bool
	// Events receives the run's events; nil drops them.
	Events func(Event)
	// Progress, when set, shows the member being defragmented on one line.
	Progress io.Writer
	// Logger logs the client's internals; nil logs nothing.
	Logger *zap.Logger
	// Poll is the first interval of the waits, which grows from it; 0 means 50ms.
	Poll time.Duration
	// Dial, when set, replaces the dialer made from Client (tests).
	Dial Dialer
}

// Defaults of the options.
const (
	DefaultMaxLag        = 1000
	DefaultKeepRevisions = 10000
)

// MemberTimeoutFor is the time one member gets for its defragmentation and
// catch-up: a minute, plus a second per 8 MiB of its file (etcd rewrites a
// 4 GB file in about 15 s on a fast disk; this allows for disks 30 times slower).
func MemberTimeoutFor(dbSize int64) time.Duration {
	return time.Minute + time.Duration(max(dbSize, 0)/(8<<20))*time.Second
}

// Validate checks the options; its errors are *defrag.InputError.
func (o *Options) Validate() error {
	if err := o.Rule.Validate(); err != nil {
		return err
	}
	if o.MemberTimeout < 0 {
		return &defrag.InputError{Field: defrag.FieldTimeout, Value: o.MemberTimeout.String(), Reason: "expected a positive duration"}
	}
	if o.KeepRevisions < 0 {
		return &defrag.InputError{Field: defrag.FieldKeepRevisions, Value: fmt.Sprint(o.KeepRevisions), Reason: "expected 0 or more revisions"}
	}
	if o.RequestTimeout <= 0 {
		return errors.New("maintenance: expected a positive request timeout")
	}
	return nil
}

// Event is one thing the run did, for people and scripts.
type Event struct {
	// Event is compaction, plan, gate, move-leader, defragmenting,
	// defragmented, skipped, failed, disarmed or interrupted.
	Event  string    `json:"event"`
	Time   time.Time `json:"time"`
	Member string    `json:"member,omitempty"`
	// Step counts the members to defragment, Of how many there are.
	Step   int    `json:"step,omitempty"`
	Of     int    `json:"of,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Plan is the decision, in the plan event.
	Plan []defrag.Decision `json:"plan,omitempty"`
}

// Member outcomes in a Result.
const (
	OutcomeDefragmented = "defragmented"
	OutcomeSkipped      = "skipped"
	OutcomeFailed       = "failed"
	OutcomeNotRun       = "not run"
)

// MemberResult is what the run did to one member.
type MemberResult struct {
	ID      defrag.MemberID `json:"id"`
	Name    string          `json:"name"`
	Outcome string          `json:"outcome"`
	// Reason is the decision's reason, or what was seen when it failed.
	Reason    string  `json:"reason"`
	Before    int64   `json:"db_size_before"`
	After     int64   `json:"db_size_after,omitempty"`
	Reclaimed int64   `json:"reclaimed"`
	Seconds   float64 `json:"seconds,omitempty"`
}

// Result is the run's report.
type Result struct {
	ClusterID string            `json:"cluster_id"`
	DryRun    bool              `json:"dry_run,omitempty"`
	Plan      []defrag.Decision `json:"plan"`
	Members   []MemberResult    `json:"members,omitempty"`
	// Compaction says what --compact did, "" without it.
	Compaction string `json:"compaction,omitempty"`
	// CompactedTo is the revision compacted to, 0 when none.
	CompactedTo int64 `json:"compacted_to,omitempty"`
	// Disarm says what was done about NOSPACE alarms, "" when none was active.
	Disarm      string  `json:"disarm,omitempty"`
	Reclaimed   int64   `json:"reclaimed"`
	Seconds     float64 `json:"seconds"`
	Interrupted bool    `json:"interrupted,omitempty"`
}

// MemberError says that the run stopped at a member: what it did and what it saw.
type MemberError struct {
	Member string
	// Step is gate, move leadership, defragment or catch up.
	Step string
	Seen string
}

func (e *MemberError) Error() string {
	return fmt.Sprintf("member %s: %s: %s", e.Member, e.Step, e.Seen)
}

// FailedError says that members failed in a run that went on after failures.
type FailedError struct{ Members []string }

func (e *FailedError) Error() string {
	return fmt.Sprintf("defragmentation failed on %d member(s): %v", len(e.Members), e.Members)
}

// ErrInterrupted says that the run was stopped between two members.
var ErrInterrupted = errors.New("interrupted between members")

// UnreachableError says that no member of the cluster answered.
type UnreachableError struct{ Reason string }

func (e *UnreachableError) Error() string { return "cluster unreachable: " + e.Reason }
