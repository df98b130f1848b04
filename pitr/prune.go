package pitr

import (
	"context"
	"errors"
	"fmt"
	"slices"

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
