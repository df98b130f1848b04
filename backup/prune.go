package backup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// KeepMore, given to Prune, may keep more of retention's decisions than
// the policy does (setting Keep and saying why) before anything is
// removed: pitr.KeepWithin keeps what a tag's log needs. An error stops
// the prune with nothing removed.
type KeepMore func(ctx context.Context, store *Store, ds []Decision) error

// Prune applies p to the snapshots of tag (every tag when empty) from
// their names alone, then more when set, and removes what they do not keep
// unless dryRun, with what killed or failed saves left (see
// removeLeftovers). It returns every decision, with Removed set on those
// it removed; a failed removal is reported but does not stop the others.
func Prune(ctx context.Context, store *Store, tag string, p Policy, more KeepMore, now time.Time, dryRun bool, lg *zap.Logger) ([]Decision, error) {
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
	if more != nil {
		if err := more(ctx, store, decisions); err != nil {
			return nil, fmt.Errorf("prune %s: %w", store.URL, err)
		}
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
