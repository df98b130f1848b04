package backup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Prune applies p to the snapshots of tag (every tag when empty) from
// their names alone, and removes what it does not keep unless dryRun, with
// what killed or failed saves left (see removeLeftovers). It
// returns every decision, with Removed set on those it removed; a failed
// removal is reported but does not stop the others.
func Prune(ctx context.Context, store *Store, tag string, p Policy, now time.Time, dryRun bool, lg *zap.Logger) ([]Decision, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	snaps, err := store.List(ctx, tag, false)
	if err != nil {
		return nil, err
	}
	decisions, err := ApplyPolicy(snaps, p, now)
	if err != nil {
		return nil, err
	}
	if dryRun {
		return decisions, nil
	}
	var errs []error
	for i := range decisions {
		d := &decisions[i]
		if d.Keep {
			continue
		}
		if err := store.Delete(ctx, d.Snapshot.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		d.Removed = true
		lg.Info("removed snapshot", zap.String("name", d.Snapshot.Key()), zap.Strings("reasons", d.Reasons))
	}
	if err := store.removeLeftovers(ctx, snaps, lg); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return decisions, fmt.Errorf("prune %s: %w", store.URL, errors.Join(errs...))
	}
	return decisions, nil
}
