package backup

import (
	"fmt"
	"sort"
	"time"
)

// Policy says which snapshots of a tag to keep; the rest are removed.
// The semantics are restic's: --keep-last N keeps the N newest; each of
// --keep-hourly/-daily/-weekly/-monthly N keeps the newest snapshot of
// each of the N most recent hours/days/ISO weeks/months that have one;
// --keep-within D keeps every snapshot taken within D of the newest one
// (not of now, so that stopped backups never age everything away).
// A snapshot kept by any rule is kept.
type Policy struct {
	Last, Hourly, Daily, Weekly, Monthly int
	Within                               time.Duration
}

// IncompleteGrace is how old an upload without a manifest must be before
// retention removes it: a younger one may still be in progress.
const IncompleteGrace = time.Hour

// Validate checks the policy's values.
func (p Policy) Validate() error {
	for _, v := range []struct {
		field Field
		n     int
	}{{FieldKeepLast, p.Last}, {FieldKeepHourly, p.Hourly}, {FieldKeepDaily, p.Daily}, {FieldKeepWeekly, p.Weekly}, {FieldKeepMonthly, p.Monthly}} {
		if v.n < 0 {
			return inputErr(v.field, fmt.Sprint(v.n), "expected a count of 0 or more")
		}
	}
	if p.Within < 0 {
		return inputErr(FieldKeepWithin, p.Within.String(), "expected a positive duration")
	}
	return nil
}

// Empty reports whether the policy keeps nothing by any rule.
func (p Policy) Empty() bool { return p == Policy{} }

// Decision is what retention decided for one snapshot, and why.
type Decision struct {
	Snapshot Snapshot
	Keep     bool
	Reasons  []string
	// Removed is set by Prune when it removed the snapshot (or found it
	// already gone); a removal that failed leaves it false.
	Removed bool
}

// ApplyPolicy decides, for every snapshot, whether p keeps it. Each tag is
// judged on its own. The newest complete snapshot of each tag is always
// kept, uploads without a manifest are removed once older than
// IncompleteGrace, and younger ones are left alone. The result is sorted
// like snaps' tags, newest first within a tag.
func ApplyPolicy(snaps []Snapshot, p Policy, now time.Time) ([]Decision, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if p.Empty() {
		return nil, &InputError{Field: FieldPolicy, Err: ErrEmptyPolicy}
	}
	byTag := map[string][]Snapshot{}
	var tags []string
	for _, s := range snaps {
		if _, ok := byTag[s.Name.Tag]; !ok {
			tags = append(tags, s.Name.Tag)
		}
		byTag[s.Name.Tag] = append(byTag[s.Name.Tag], s)
	}
	sort.Strings(tags)
	var out []Decision
	for _, tag := range tags {
		out = append(out, applyTag(byTag[tag], p, now)...)
	}
	return out, nil
}

// bucketRule keeps the newest snapshot of each of the n most recent periods.
type bucketRule struct {
	reason string
	n      int
	period func(time.Time) string
}

func applyTag(snaps []Snapshot, p Policy, now time.Time) []Decision {
	sort.SliceStable(snaps, func(i, j int) bool { return snaps[i].Name.Time.After(snaps[j].Name.Time) })
	rules := []*bucketRule{
		{"hourly", p.Hourly, func(t time.Time) string { return t.Format("2006-01-02T15") }},
		{"daily", p.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{"monthly", p.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
	}
	last := map[*bucketRule]string{}
	var newest time.Time
	for _, s := range snaps {
		if s.Complete() {
			newest = s.Name.Time
			break
		}
	}
	out := make([]Decision, 0, len(snaps))
	keptLast, newestKept := 0, false
	for _, s := range snaps {
		d := Decision{Snapshot: s}
		if !s.Complete() {
			if now.Sub(s.Name.Time) < IncompleteGrace {
				d.Keep, d.Reasons = true, []string{"upload may be in progress"}
			} else {
				d.Reasons = []string{"incomplete upload: no manifest"}
			}
			out = append(out, d)
			continue
		}
		t := s.Name.Time.UTC()
		if !newestKept {
			d.Reasons = append(d.Reasons, "newest complete snapshot")
			newestKept = true
		}
		if keptLast < p.Last {
			keptLast++
			d.Reasons = append(d.Reasons, fmt.Sprintf("last %d", p.Last))
		}
		for _, r := range rules {
			if r.n == 0 {
				continue
			}
			if k := r.period(t); k != last[r] {
				last[r] = k
				r.n--
				d.Reasons = append(d.Reasons, r.reason+" "+k)
			}
		}
		if p.Within > 0 && newest.Sub(t) <= p.Within {
			d.Reasons = append(d.Reasons, "within "+p.Within.String()+" of the newest")
		}
		d.Keep = len(d.Reasons) > 0
		if !d.Keep {
			d.Reasons = []string{"no rule keeps it"}
		}
		out = append(out, d)
	}
	return out
}
