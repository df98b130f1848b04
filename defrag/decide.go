// Package defrag compacts and defragments a live etcd cluster one member at
// a time: Decide says which members need it, Run does it, health-gated, leader last.
package defrag

import (
	"fmt"
	"math"

	"github.com/dustin/go-humanize"
)

// Rule says when a member's database is worth defragmenting.
type Rule struct {
	// MinFree and MinFreeFraction: a member whose file has at least MinFree
	// bytes free and at least MinFreeFraction of the file free is defragmented.
	MinFree         int64
	MinFreeFraction float64
	// QuotaFraction: a member whose file is above this fraction of its quota
	// is defragmented whatever its free space.
	QuotaFraction float64
	// FallbackQuota is the quota of members whose status reports none
	// (etcd before 3.6); 0 leaves the quota rule out for them.
	FallbackQuota int64
	// All defragments every member the request can reach, by no rule.
	All bool
}

// DefaultRule is 100 MiB and 45% of the file free, or the file above 80% of its quota.
func DefaultRule() Rule {
	return Rule{MinFree: 100 << 20, MinFreeFraction: 0.45, QuotaFraction: 0.8, FallbackQuota: DefaultQuota}
}

// DefaultQuota is etcd's default backend quota, 2 GiB.
const DefaultQuota = 2 << 30

// Field names an input of a defrag. The command line maps each to its flag.
type Field string

// The inputs an InputError can be about.
const (
	FieldMinFree         Field = "min free"          // Rule.MinFree
	FieldMinFreeFraction Field = "min free fraction" // Rule.MinFreeFraction
	FieldQuotaFraction   Field = "quota fraction"    // Rule.QuotaFraction
	FieldFallbackQuota   Field = "fallback quota"    // Rule.FallbackQuota
	FieldTimeout         Field = "timeout"           // Options.MemberTimeout
	FieldKeepRevisions   Field = "keep revisions"    // Options.KeepRevisions
)

// InputError is an input that makes no sense: Field holds Value, which is
// wrong as Reason says. Nothing was changed.
type InputError struct {
	Field  Field
	Value  string
	Reason string
}

func (e *InputError) Error() string { return fmt.Sprintf("%s %s: %s", e.Field, e.Value, e.Reason) }

// Validate checks the rule; its errors are *InputError.
func (r Rule) Validate() error {
	for _, f := range []struct {
		field Field
		v     float64
	}{{FieldMinFreeFraction, r.MinFreeFraction}, {FieldQuotaFraction, r.QuotaFraction}} {
		if !(f.v > 0 && f.v <= 1) || math.IsNaN(f.v) {
			return &InputError{Field: f.field, Value: fmt.Sprint(f.v), Reason: "expected a fraction in (0,1], such as 0.45"}
		}
	}
	if r.MinFree < 0 {
		return &InputError{Field: FieldMinFree, Value: fmt.Sprint(r.MinFree), Reason: "expected a size of 0 or more"}
	}
	if r.FallbackQuota < 0 {
		return &InputError{Field: FieldFallbackQuota, Value: fmt.Sprint(r.FallbackQuota), Reason: "expected a size of 0 or more"}
	}
	return nil
}

// MemberStatus is what a member reported of itself.
type MemberStatus struct {
	ID       MemberID `json:"id"`
	Name     string   `json:"name"`
	Endpoint string   `json:"endpoint"`
	// Error says why the member gave no status; the sizes are unknown then.
	Error       string `json:"error,omitempty"`
	DBSize      int64  `json:"db_size"`
	DBSizeInUse int64  `json:"db_size_in_use"`
	// Quota is the backend quota the member reports: 0 when it reports none
	// (etcd before 3.6), negative when the quota is off.
	Quota     int64  `json:"quota"`
	IsLeader  bool   `json:"is_leader"`
	IsLearner bool   `json:"is_learner"`
	Applied   uint64 `json:"applied_index"`
}

// MemberID is a member's ID; JSON has it in hex, as etcdctl prints it in
// tables (a uint64 does not survive JSON parsers that read numbers as doubles).
type MemberID uint64

// MarshalJSON writes the ID as a hex string.
func (id MemberID) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf(`"%x"`, uint64(id))), nil }

// Decision is what Decide says of one member.
type Decision struct {
	MemberStatus
	Free         int64   `json:"free"`
	FreeFraction float64 `json:"free_fraction"`
	// QuotaUsed is the quota the rule used (the fallback when the member
	// reports none), 0 when there is none; QuotaFromStatus says which.
	QuotaUsed       int64  `json:"quota_used"`
	QuotaFromStatus bool   `json:"quota_from_status"`
	Defrag          bool   `json:"defrag"`
	Reason          string `json:"reason"`
}

// ReasonLearner is why a learner is never defragmented: etcd 3.6's unary
// interceptor lets a learner serve only Status and serializable reads, so
// it answers Defragment with "rpc not supported for learner".
const ReasonLearner = "learner: etcd refuses to defragment a learner (rpc not supported for learner)"

// Decide judges every member against r and orders the result as the run
// goes: followers first, in the order given, the leader last. It is a pure
// function of its arguments.
func Decide(members []MemberStatus, r Rule) []Decision {
	var out []Decision
	var leader *Decision
	for _, m := range members {
		d := decide(m, r)
		if m.IsLeader {
			leader = &d
			continue
		}
		out = append(out, d)
	}
	if leader != nil {
		out = append(out, *leader)
	}
	return out
}

func decide(m MemberStatus, r Rule) Decision {
	d := Decision{MemberStatus: m}
	if m.Error != "" {
		d.Reason = "no status: " + m.Error
		return d
	}
	d.Free = max(m.DBSize-m.DBSizeInUse, 0)
	if m.DBSize > 0 {
		d.FreeFraction = float64(d.Free) / float64(m.DBSize)
	}
	switch {
	case m.Quota > 0:
		d.QuotaUsed, d.QuotaFromStatus = m.Quota, true
	case m.Quota == 0:
		d.QuotaUsed = r.FallbackQuota
	}
	if m.IsLearner {
		d.Reason = ReasonLearner
		return d
	}
	free := fmt.Sprintf("%s free, %.0f%% of the file", ib(d.Free), d.FreeFraction*100)
	switch {
	case r.All:
		d.Defrag, d.Reason = true, "every member asked for"
	case d.QuotaUsed > 0 && float64(m.DBSize) > r.QuotaFraction*float64(d.QuotaUsed):
		d.Defrag = true
		d.Reason = fmt.Sprintf("file %s is %.0f%% of its %s quota (above %s)", ib(m.DBSize),
			float64(m.DBSize)*100/float64(d.QuotaUsed), ib(d.QuotaUsed), pct(r.QuotaFraction))
	case d.Free >= r.MinFree && d.FreeFraction >= r.MinFreeFraction:
		d.Defrag = true
		d.Reason = fmt.Sprintf("%s (at least %s and %s)", free, ib(r.MinFree), pct(r.MinFreeFraction))
	default:
		d.Reason = fmt.Sprintf("%s: not at least %s and %s", free, ib(r.MinFree), pct(r.MinFreeFraction))
	}
	return d
}

func ib(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

func pct(f float64) string { return fmt.Sprintf("%g%%", math.Round(f*1000)/10) }
