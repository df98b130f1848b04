package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/health"
	"github.com/etcdops/etcdops/restore"
)

// backupFlags names the flag of each backup.Field that the backup commands share; commands add
// their own (the bucket is --to in save, --from elsewhere). A field without a flag (a snapshot
// NAME argument) keeps the package's wording.
var backupFlags = map[backup.Field]string{
	backup.FieldBucket:       "--from",
	backup.FieldTag:          "--tag",
	backup.FieldMember:       "--member",
	backup.FieldIdentity:     "--identity",
	backup.FieldRecipient:    "--age-recipient",
	backup.FieldSpoolDir:     "--spool-dir",
	backup.FieldKeepLast:     "--keep-last",
	backup.FieldKeepHourly:   "--keep-hourly",
	backup.FieldKeepDaily:    "--keep-daily",
	backup.FieldKeepWeekly:   "--keep-weekly",
	backup.FieldKeepMonthly:  "--keep-monthly",
	backup.FieldKeepWithin:   "--keep-within",
	backup.FieldStallTimeout: "--stall-timeout",
}

// withBackupFlags runs a backup command's action and turns the backup package's input errors
// into usage errors (exit 2) that name the command's flag; extra adds or overrides fields.
func withBackupFlags(extra map[backup.Field]string, action cli.ActionFunc) cli.ActionFunc {
	flags := backupFlags
	if len(extra) > 0 {
		flags = map[backup.Field]string{}
		for k, v := range backupFlags {
			flags[k] = v
		}
		for k, v := range extra {
			flags[k] = v
		}
	}
	return func(c *cli.Context) error { return backupFlagError(action(c), flags) }
}

// backupFlagError is err, or, for a *backup.InputError, a usage error that names the flag.
func backupFlagError(err error, flags map[backup.Field]string) error {
	var ie *backup.InputError
	if !errors.As(err, &ie) {
		return err
	}
	flag, ok := flags[ie.Field]
	switch {
	case errors.Is(ie, backup.ErrEmptyPolicy):
		return usageError(errors.New("no --keep-* rule given: refusing to remove every snapshot"))
	case !ok:
		return usageError(ie)
	case errors.Is(ie, backup.ErrExists):
		return usageError(fmt.Errorf("%s %s: file exists (use --force to replace it)", flag, ie.Value))
	default:
		return flagUsageError(flag, ie.Value, ie.Err)
	}
}

// flagUsageError is the usage error (exit 2) of bad input in flag: its value (empty when there is
// none to show) is wrong as reason says.
func flagUsageError(flag, value string, reason error) error {
	if value == "" {
		return usageError(fmt.Errorf("%s: %w", flag, reason))
	}
	return usageError(fmt.Errorf("%s %q: %w", flag, value, reason))
}

// restoreFlags names the flag of each restore.Field; migrate's --add maps its own.
var restoreFlags = map[restore.Field]string{
	restore.FieldFrom:            "--from",
	restore.FieldSnapshot:        "--snapshot",
	restore.FieldTag:             "--tag",
	restore.FieldInitialCluster:  "--initial-cluster",
	restore.FieldToken:           "--initial-cluster-token",
	restore.FieldName:            "--name",
	restore.FieldClientURLs:      "--client-urls",
	restore.FieldDataDirTemplate: "--data-dir-template",
	restore.FieldConfigDir:       "--config-dir",
	restore.FieldMarkCompacted:   "--mark-compacted",
	restore.FieldCertFile:        "--cert-file",
	restore.FieldKeyFile:         "--key-file",
	restore.FieldPeerCertFile:    "--peer-cert-file",
	restore.FieldPeerKeyFile:     "--peer-key-file",
}

// restoreInputError is err, or, for a *restore.ConfigError, a usage error that names the flag.
func restoreInputError(err error) error {
	var ce *restore.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	flag, ok := restoreFlags[ce.Field]
	if !ok {
		return usageError(err)
	}
	return flagUsageError(flag, ce.Value, errors.New(ce.Reason))
}

// healthFlags names the flag of each health.Field.
var healthFlags = map[health.Field]string{
	health.FieldWarnDBPercent: "--warn-db-percent",
	health.FieldCritDBPercent: "--crit-db-percent",
	health.FieldMaxBackupAge:  "--max-backup-age",
}

// thresholdFlagError is err, or, for a *health.ThresholdError, the same error naming the flags.
// Health's caller decides its exit code.
func thresholdFlagError(err error) error {
	var te *health.ThresholdError
	if !errors.As(err, &te) {
		return err
	}
	if te.With != "" {
		return fmt.Errorf("%s %s: %s %s %s", healthFlags[te.Field], te.Value, te.Reason, healthFlags[te.With], te.WithValue)
	}
	return fmt.Errorf("%s %s: %s", healthFlags[te.Field], te.Value, te.Reason)
}
