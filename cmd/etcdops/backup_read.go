package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/pitr"
	"github.com/etcdops/etcdops/restore"
)

// openFrom opens the bucket of --from.
func openFrom(c *cli.Context) (*backup.Store, error) {
	return backup.OpenStore(c.Context, c.String("from"), storeOptions(c)...)
}

// openSnapshot opens the bucket of --from and resolves the NAME|latest
// argument (default latest) in it. The caller closes the store.
func openSnapshot(c *cli.Context) (*backup.Store, backup.Snapshot, error) {
	if c.NArg() > 1 {
		return nil, backup.Snapshot{}, usageError(fmt.Errorf("unexpected argument %q: expected one snapshot NAME or latest", c.Args().Get(1)))
	}
	store, err := openFrom(c)
	if err != nil {
		return nil, backup.Snapshot{}, err
	}
	snap, err := store.Find(c.Context, c.Args().First(), c.String("tag"))
	if err != nil {
		store.Close()
		return nil, backup.Snapshot{}, err
	}
	return store, snap, nil
}

func backupListCommand() *cli.Command {
	return &cli.Command{
		Name:      "list",
		Usage:     "list the snapshots in a bucket, oldest first",
		UsageText: "etcdops backup list --from URL [--tag TAG] [-w table|json]",
		Flags:     []cli.Flag{flagFrom, flagTag, flagOutput},
		Action: withBackupFlags(nil, func(c *cli.Context) error {
			if err := noArgsAndFormat(c); err != nil {
				return err
			}
			store, err := openFrom(c)
			if err != nil {
				return err
			}
			defer store.Close()
			snaps, err := store.List(c.Context, c.String("tag"), true)
			if err != nil {
				return err
			}
			recs, tags, err := recoveries(c, store, snaps, nil)
			if err != nil {
				return err
			}
			if c.String("write-out") == "json" {
				return writeJSON(c.App.Writer, listJSON(snaps, recs))
			}
			tw := newTable(c.App.Writer)
			fmt.Fprintln(tw, "NAME\tTAG\tTIME (UTC)\tREVISION\tKEYS\tSIZE\tSTATE")
			for _, s := range snaps {
				rev, keys, state := "-", "-", "incomplete"
				if m := s.Manifest; m != nil {
					rev, keys, state = fmt.Sprint(m.Revision), fmt.Sprint(m.TotalKeys), "verified at save"
					if m.Revision == backup.RevisionUnknown {
						rev, keys = "unknown", "unknown"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Key(), s.Name.Tag, s.Name.Time.Format(time.DateTime),
					rev, keys, humanize.IBytes(uint64(s.Size)), state)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, tag := range tags {
				printRecovery(c.App.Writer, recs[tag])
			}
			return nil
		}),
	}
}

// listEntry is one snapshot in `backup list -w json`.
type listEntry struct {
	Name     string           `json:"name"`
	Tag      string           `json:"tag"`
	Time     time.Time        `json:"time"`
	Size     int64            `json:"size"`
	Complete bool             `json:"complete"`
	Manifest *backup.Manifest `json:"manifest,omitempty"`
	// Recoverable is the range of the tag's point-in-time log that the
	// snapshot starts or lies in; LogGaps are the log's gaps.
	Recoverable *pitr.Range `json:"recoverable,omitempty"`
	LogGaps     []pitr.Hole `json:"log_gaps,omitempty"`
}

func listJSON(snaps []backup.Snapshot, recs map[string]pitr.Recovery) []listEntry {
	out := make([]listEntry, 0, len(snaps))
	for _, s := range snaps {
		e := listEntry{Name: s.Key(), Tag: s.Name.Tag, Time: s.Name.Time, Size: s.Size, Complete: s.Complete(), Manifest: s.Manifest}
		if r, ok := recs[s.Name.Tag]; ok && s.Manifest != nil {
			e.Recoverable, e.LogGaps = rangeOf(r.Ranges, s.Manifest.Revision), r.Holes
		}
		out = append(out, e)
	}
	return out
}

func backupVerifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "re-read a snapshot and check it against its manifest and etcd's integrity checks",
		UsageText: "etcdops backup verify --from URL [NAME|latest] [--tag TAG] [--identity FILE] [--restore-test]\n" +
			"   etcdops backup verify --from URL --pitr [--tag TAG] [--identity FILE]",
		Description: "Checks the stored bytes' sha256; decodes the snapshot and checks etcd's sha256 trailer, bolt's\n" +
			"consistency check, revision and key count. --restore-test also restores it into a temporary\n" +
			"member and checks what that member serves. An encrypted snapshot without --identity gets only\n" +
			"the first check. --pitr instead reads every segment of the point-in-time logs (of --tag, or of\n" +
			"every tag) and checks its checksum and revisions, and that the log from each snapshot is\n" +
			"contiguous, each gap recorded. Exit 1 when anything does not match.",
		Flags: []cli.Flag{flagFrom, flagTag, flagIdentity, flagSpool, flagStall, flagQuiet, flagOutput, flagLogLevel,
			&cli.BoolFlag{Name: "restore-test", Usage: "restore into a temporary member and check what it serves"},
			&cli.BoolFlag{Name: "pitr", Usage: "check the point-in-time logs instead: every segment, and the chain from each snapshot"}},
		Action: withBackupFlags(nil, func(c *cli.Context) error {
			if err := checkFormat(c); err != nil {
				return err
			}
			ids, err := identitiesFrom(c)
			if err != nil {
				return err
			}
			lg, err := newLogger(c.String("log-level"))
			if err != nil {
				return err
			}
			if c.Bool("pitr") {
				store, err := openFrom(c)
				if err != nil {
					return err
				}
				defer store.Close()
				return verifyLogs(c, store, ids)
			}
			store, snap, err := openSnapshot(c)
			if err != nil {
				return err
			}
			defer store.Close()
			vcfg := backup.VerifyConfig{Identities: ids,
				SpoolDir: c.String("spool-dir"), Progress: newProgress(c.Bool("quiet")), Logger: lg}
			if c.Bool("restore-test") {
				vcfg.RestoreTest = restore.Trial
			}
			res, err := backup.Verify(c.Context, store, snap, vcfg)
			if err != nil {
				return err
			}
			if c.String("write-out") == "json" {
				return writeJSON(c.App.Writer, res)
			}
			checks := []string{"stored bytes"}
			if res.Contents {
				checks = append(checks, fmt.Sprintf("contents (revision %d, %d keys)", res.Revision, res.Keys))
			}
			if res.Restored {
				checks = append(checks, "restore test")
			}
			fmt.Fprintf(c.App.Writer, "verified %s: %s\n", res.Name, strings.Join(checks, ", "))
			if res.Note != "" {
				fmt.Fprintf(c.App.Writer, "note: %s\n", res.Note)
			}
			return nil
		}),
	}
}

func identitiesFrom(c *cli.Context) ([]age.Identity, error) {
	if c.String("identity") == "" {
		return nil, nil
	}
	return backup.ReadIdentities(c.String("identity"))
}

func backupFetchCommand() *cli.Command {
	return &cli.Command{
		Name:  "fetch",
		Usage: "download a snapshot as a plain etcd snapshot file for etcdutl snapshot restore",
		UsageText: "etcdops backup fetch --from URL NAME|latest --to FILE [--tag TAG] [--identity FILE] [--force]\n" +
			"   etcdops backup fetch --from URL --tag TAG --to-revision R|latest|--to-time TIME --to FILE [--identity FILE] [--force]",
		Description: "With --to-revision or --to-time, the snapshot is the tag's state at that point of its log: the\n" +
			"newest snapshot before it with the log's revisions replayed onto it, written with etcd's sha256\n" +
			"trailer as 'etcdctl snapshot save' writes one.",
		Flags: append([]cli.Flag{flagFrom, flagTag, flagIdentity, flagStall, flagQuiet, flagSpool, flagLogLevel,
			&cli.StringFlag{Name: "to", Required: true, Usage: "write the snapshot to `FILE` (mode 0600)"},
			&cli.BoolFlag{Name: "force", Usage: "replace --to if it exists"}}, pointInTimeFlags()...),
		Action: withBackupFlags(map[backup.Field]string{backup.FieldDestination: "--to"}, func(c *cli.Context) error {
			ids, err := identitiesFrom(c)
			if err != nil {
				return err
			}
			to, err := pointInTime(c)
			if err != nil {
				return err
			}
			if to != nil {
				return fetchPointInTime(c, ids, *to)
			}
			store, snap, err := openSnapshot(c)
			if err != nil {
				return err
			}
			defer store.Close()
			if err := backup.Fetch(c.Context, store, snap, ids, c.String("to"), c.Bool("force"), newProgress(c.Bool("quiet"))); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "fetched %s to %s (revision %d)\n", snap.Key(), c.String("to"), snap.Manifest.Revision)
			return nil
		}),
	}
}

// fetchPointInTime writes the tag's state at a point of its log to --to.
func fetchPointInTime(c *cli.Context, ids []age.Identity, to restore.PointInTime) error {
	if c.NArg() > 0 {
		return usageError(fmt.Errorf("unexpected argument %q: --to-revision and --to-time choose the snapshot", c.Args().First()))
	}
	dst := c.String("to")
	if _, err := os.Lstat(dst); err == nil && !c.Bool("force") {
		return &backup.InputError{Field: backup.FieldDestination, Value: dst, Err: backup.ErrExists}
	}
	lg, err := newLogger(c.String("log-level"))
	if err != nil {
		return err
	}
	src := restore.Source{From: c.String("from"), Tag: c.String("tag"), Identities: ids, SpoolDir: c.String("spool-dir"),
		Bucket: storeOptions(c), Progress: newProgress(c.Bool("quiet")), Logger: lg}
	s, res, err := openPointInTime(c, src, to)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Inspect(); err != nil {
		return err
	}
	if s.Revision != res.Chain.Target {
		return fmt.Errorf("replayed database at revision %d, expected %d", s.Revision, res.Chain.Target)
	}
	if err := s.WriteFile(dst, c.Bool("force")); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "fetched revision %d of tag %s to %s (snapshot %s and %d log segments)\n",
		res.Chain.Target, c.String("tag"), dst, res.Chain.Base.Name, len(res.Segments))
	return nil
}

func backupPruneCommand() *cli.Command {
	return &cli.Command{
		Name:      "prune",
		Usage:     "remove the snapshots that no --keep-* rule keeps, per tag",
		UsageText: "etcdops backup prune --from URL [--tag TAG] --keep-daily 7 … [--dry-run]",
		Description: "Rules as restic's forget: a snapshot kept by any rule is kept. The newest complete snapshot of\n" +
			"each tag is never removed. Uploads without a manifest older than an hour are removed. A tag's\n" +
			"point-in-time log objects (<tag>_log/) that end at or before its oldest kept snapshot are removed.\n" +
			"--pitr-keep-within D keeps, for each tag with a log, every point within D before its newest\n" +
			"snapshot recoverable: the newest snapshot taken at or before then, and any later one that starts\n" +
			"a range after a gap of the log, stay with the log after them.",
		Flags: append([]cli.Flag{flagFrom, flagTag, flagOutput, flagLogLevel, flagPITRKeepWithin,
			&cli.BoolFlag{Name: "dry-run", Usage: "print what would be removed and why, remove nothing"}}, keepFlags()...),
		Action: withBackupFlags(nil, func(c *cli.Context) error {
			if err := noArgsAndFormat(c); err != nil {
				return err
			}
			policy, err := policyFrom(c)
			if err != nil {
				return err
			}
			if _, err := backup.ApplyPolicy(nil, policy, time.Now()); err != nil {
				return err
			}
			var more backup.KeepMore
			if c.IsSet(flagPITRKeepWithin.Name) {
				d, err := pitr.ParseWindow(c.String(flagPITRKeepWithin.Name))
				if err != nil {
					return usageError(fmt.Errorf("--%s: %w", flagPITRKeepWithin.Name, err))
				}
				if d > 0 {
					more = pitr.KeepLogWithin(d)
				}
			}
			lg, err := newLogger(c.String("log-level"))
			if err != nil {
				return err
			}
			store, err := openFrom(c)
			if err != nil {
				return err
			}
			defer store.Close()
			ds, err := backup.Prune(c.Context, store, c.String("tag"), policy, more, time.Now(), c.Bool("dry-run"), lg)
			var lds []pitr.LogDecision
			if ds != nil {
				var lerr error
				lds, lerr = pitr.PruneLog(c.Context, store, ds, c.Bool("dry-run"), lg)
				err = errors.Join(err, lerr)
			}
			if ds != nil {
				if werr := writeDecisions(c, ds, lds); werr != nil {
					return errors.Join(err, werr)
				}
			}
			return err
		}),
	}
}

func writeDecisions(c *cli.Context, ds []backup.Decision, lds []pitr.LogDecision) error {
	type row struct {
		Name    string   `json:"name"`
		Keep    bool     `json:"keep"`
		Reasons []string `json:"reasons"`
	}
	rows := make([]row, 0, len(ds))
	for _, d := range ds {
		rows = append(rows, row{d.Snapshot.Key(), d.Keep, d.Reasons})
	}
	for _, d := range lds {
		rows = append(rows, row{d.Name.String(), false, d.Reasons})
	}
	if c.String("write-out") == "json" {
		return writeJSON(c.App.Writer, rows)
	}
	verb := "remove"
	if c.Bool("dry-run") {
		verb = "would remove"
	}
	tw := newTable(c.App.Writer)
	for _, r := range rows {
		action := verb
		if r.Keep {
			action = "keep"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", action, r.Name, strings.Join(r.Reasons, ", "))
	}
	return tw.Flush()
}
