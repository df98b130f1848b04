package backup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"go.etcd.io/etcd/client/pkg/v3/types"
)

// BackupResult is what one Backup did.
type BackupResult struct {
	Manifest *Manifest
	// Pruned counts the snapshots retention removed; removals that failed
	// (see PruneErr) are not counted.
	Pruned int
	// PruneErr is a failure of retention after a successful save: it is
	// reported, and does not make the backup fail.
	PruneErr error
}

// Backup is one backup as `backup save` and every schedule run it: a Save,
// then, only when the save succeeded and policy has a rule, retention for
// the saved snapshot's tag. A failure to prune is logged and returned in
// the result; it never fails the backup.
func Backup(ctx context.Context, store *Store, cfg SaveConfig, policy Policy) (*BackupResult, error) {
	m, err := Save(ctx, store, cfg)
	if !ShouldPrune(err, policy) {
		if err != nil {
			return nil, err
		}
		return &BackupResult{Manifest: m}, nil
	}
	lg := cfg.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	now := nowOf(cfg)
	res := &BackupResult{Manifest: m}
	decisions, err := Prune(ctx, store, m.Tag, policy, cfg.KeepMore, now, false, lg)
	if cfg.AfterPrune != nil && decisions != nil {
		err = errors.Join(err, cfg.AfterPrune(ctx, store, decisions, lg))
	}
	for _, d := range decisions {
		if d.Removed {
			res.Pruned++
		}
	}
	if err != nil {
		res.PruneErr = fmt.Errorf("retention of %s: %w", m.Tag, err)
		lg.Warn("retention after save failed; the snapshot is saved", zap.String("name", m.Name), zap.Error(err))
	}
	return res, nil
}

// ShouldPrune decides whether retention follows a save: only after a
// successful one, and only when a rule says what to keep.
func ShouldPrune(saveErr error, policy Policy) bool { return saveErr == nil && !policy.Empty() }

// DefaultTag is the tag of a save given no tag. Asked of one endpoint, it
// is that member's name: the series of backups of one member. Asked of
// several, the member that serves a snapshot changes from run to run, so
// the tag names the cluster instead — "cluster-" and its ID in hex as
// etcdctl prints it — and every run of a job lands in one series.
func DefaultTag(src Source, endpoints int) string {
	if endpoints > 1 {
		return ClusterTag(src.ClusterID)
	}
	return SafeTag(src.Name)
}

// ClusterTag is the cluster-wide tag of the cluster with the given ID.
func ClusterTag(clusterID uint64) string { return "cluster-" + types.ID(clusterID).String() }

func nowOf(cfg SaveConfig) time.Time {
	if cfg.Now != nil {
		return cfg.Now()
	}
	return time.Now()
}
