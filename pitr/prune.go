package pitr

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/etcdops/etcdops/backup"
)

// LogDecision is what log retention decided for one log object of a tag
// (a segment or a gap record): only objects to remove are decided, with
// why; Removed is set by PruneLog when it removed it (or found it gone).
type LogDecision struct {
	Name    SegmentName
	Reasons []string
	Removed bool
}

// DecideLog decides which of a tag's log objects no restore can reach once
// only the snapshots at revisions kept remain: those whose last revision
// is at or before the oldest kept snapshot's (a replay from it starts
// after its revision). A segment that straddles it stays, as does every
// object when no kept snapshot has a known revision (kept holds only
// revisions > 0). The result is in log's order.
func DecideLog(log []SegmentName, kept []int64) []LogDecision {
	kept = slices.DeleteFunc(slices.Clone(kept), func(r int64) bool { return r <= 0 })
	if len(kept) == 0 {
		return nil
	}
	oldest := slices.Min(kept)
	var out []LogDecision
	for _, n := range log {
		if n.Last > oldest {
			continue
		}
		what := "segment"
		if n.Gap {
			what = "gap record"
		}
		out = append(out, LogDecision{Name: n, Reasons: []string{
			fmt.Sprintf("%s ends at or before revision %d of the oldest kept snapshot", what, oldest)}})
	}
	return out
}

// PruneLog applies log retention after backup.Prune decided ds: for each
// tag of ds that has a log, the snapshots that remain (kept, or whose
// removal failed; with dryRun, those kept) are read with their manifests,
// and the log objects DecideLog gives are removed unless dryRun. Tags
// without a log are left as they were. A failed removal is reported but
// does not stop the others.
func PruneLog(ctx context.Context, store *backup.Store, ds []backup.Decision, dryRun bool, lg *zap.Logger) ([]LogDecision, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	remain := map[string]map[string]bool{}
	var tags []string
	for _, d := range ds {
		tag := d.Snapshot.Name.Tag
		if remain[tag] == nil {
			remain[tag] = map[string]bool{}
			tags = append(tags, tag)
		}
		if d.Keep || (!dryRun && !d.Removed) {
			remain[tag][d.Snapshot.Key()] = true
		}
	}
	var out []LogDecision
	var errs []error
	for _, tag := range tags {
		l, err := List(ctx, store, tag)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(l.Log) == 0 {
			continue
		}
		var kept []int64
		for _, b := range l.Bases {
			if remain[tag][b.Name] {
				kept = append(kept, b.Revision)
			}
		}
		lds := DecideLog(l.Log, kept)
		for i := range lds {
			if dryRun {
				continue
			}
			d := &lds[i]
			if err := store.DeleteObject(ctx, d.Name.String()); err != nil {
				errs = append(errs, err)
				continue
			}
			d.Removed = true
			lg.Info("removed log object", zap.String("name", d.Name.String()), zap.Strings("reasons", d.Reasons))
		}
		out = append(out, lds...)
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("prune log in %s: %w", store.URL, errors.Join(errs...))
	}
	return out, nil
}

// AfterPrune is PruneLog as backup.SaveConfig's AfterPrune: the log
// retention that follows a save's.
func AfterPrune(ctx context.Context, store *backup.Store, ds []backup.Decision, lg *zap.Logger) error {
	_, err := PruneLog(ctx, store, ds, false, lg)
	return err
}

// KeepWithin decides, for the tag l lists, which more snapshots retention
// keeps so that every point within d before its newest snapshot stays
// recoverable (the window is measured from the newest snapshot, not from
// now, so that a stopped log never ages away): the newest snapshot taken
// at or before that time (the oldest when none is), and each later one
// that starts a recoverable range (the first after a hole of the log).
// It sets Keep on their decisions in ds, saying why; the log after them
// stays, as DecideLog keeps what follows the oldest kept snapshot.
// Decisions of other tags, and a listing without a log, are left alone.
func KeepWithin(ds []backup.Decision, l Listing, d time.Duration) {
	bases := slices.Clone(l.Bases)
	if len(l.Log) == 0 || len(bases) == 0 || d <= 0 {
		return
	}
	slices.SortFunc(bases, func(a, b Base) int { return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Revision, b.Revision)) })
	from := bases[len(bases)-1].Time.Add(-d)
	start := bases[0]
	for _, b := range bases {
		if !b.Time.After(from) {
			start = b
		}
	}
	keep := map[string]string{start.Name: fmt.Sprintf("start of the %s point-in-time window", d)}
	rs, _ := Ranges(l)
	for _, r := range rs {
		if r.From <= start.Revision {
			continue
		}
		for _, b := range bases {
			if b.Revision == r.From {
				keep[b.Name] = fmt.Sprintf("start of a recoverable range in the %s point-in-time window", d)
			}
		}
	}
	for i := range ds {
		why, ok := keep[ds[i].Snapshot.Key()]
		if !ok {
			continue
		}
		if !ds[i].Keep {
			ds[i].Keep, ds[i].Reasons = true, nil
		}
		ds[i].Reasons = append(ds[i].Reasons, why)
	}
}

// KeepLogWithin is KeepWithin as backup.Prune's KeepMore: it lists each
// tag of ds (its snapshots' manifests and its log) and keeps what the
// tag's log needs for every point within d before its newest snapshot. A
// tag that cannot be listed stops the prune.
func KeepLogWithin(d time.Duration) backup.KeepMore {
	return func(ctx context.Context, store *backup.Store, ds []backup.Decision) error {
		seen := map[string]bool{}
		for _, x := range ds {
			tag := x.Snapshot.Name.Tag
			if seen[tag] {
				continue
			}
			seen[tag] = true
			l, err := List(ctx, store, tag)
			if err != nil {
				return fmt.Errorf("point-in-time window of %s: %w", tag, err)
			}
			KeepWithin(ds, l, d)
		}
		return nil
	}
}

// ParseWindow parses a point-in-time window (KeepWithin's d): a duration,
// 0 for none.
func ParseWindow(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: expected a duration of 0 or more, such as 24h or 168h", s)
	}
	return d, nil
}
