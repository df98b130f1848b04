package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/restore"
)

const restoreDescription = `Writes a complete data dir for every member of a new cluster from one snapshot (or, with --name,
for one member: run it so on each host with the same --initial-cluster and --initial-cluster-token),
and for each member a configuration file <name>.yml for 'etcdops serve --config-file' (stock etcd
reads it too) and the same settings as ETCD_* variables in <name>.env. Both go next to the data dir
unless --config-dir says otherwise; data dirs are written with absolute paths.

SOURCE is a local snapshot file (as 'etcdctl snapshot save' writes it, or as 'etcdops backup save'
stored it, with its <file>.json manifest beside it; .zst and .age files are decoded) or a bucket URL
with --snapshot NAME|latest. Before anything is written the snapshot is checked: etcd's sha256
trailer, the manifest's sha256s, then every bolt page of its database, read together with its
revision, key count (against the manifest's) and KV hash; then the plan is printed, and --dry-run
stops there. After writing, each data dir is checked against them and the plan.

With --to-revision R (or latest: the end of the log) or --to-time TIME (the last revision received at
or before TIME), SOURCE is a bucket whose --tag has a point-in-time log ('etcdops schedule --pitr'): the
newest snapshot at or before the target is fetched and checked, the log's segments after it are fetched
in parallel, checked and replayed onto it offline, and the result is restored as a snapshot would be.
Every revision from the snapshot's to the target must be in the log; a target before the earliest
snapshot, after the end of the log or inside a gap is refused (exit 2) with what the log can reach.

A member's client URL is its peer URL's scheme and host with port 2379 unless --client-urls gives
it; members listen on the advertised addresses (on 0.0.0.0 for host names). The token defaults to a
fresh unique value, so that the new cluster never mixes with the old one.

An existing non-empty data dir is never overwritten: --move-aside renames it to <dir>.old-<UTC time>.
Each data dir is written under <dir>.restoring-<random> and renamed only when complete and checked;
rerunning after an interruption removes such leftovers.

Kubernetes and other clients that watch: restore with --bump-revision 1000000000 --mark-compacted
(more than the revisions written since the snapshot): revisions then never go backwards, and watches
and informers of the old cluster get "compacted" and list again instead of missing changes.

Exit codes: 0 restored (or dry run passed), 1 the restore failed and left nothing half-written
(bad or missing snapshot, wrong key, existing data dir, full or read-only filesystem),
2 bad flags or arguments (nothing was read or written).`

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:  "restore",
		Usage: "write the data dirs and configurations of a new cluster's members from a snapshot",
		UsageText: "etcdops restore --from SOURCE [--snapshot NAME|latest [--tag TAG]] --initial-cluster a=URL,b=URL,c=URL\n" +
			"   etcdops restore --from URL --tag TAG --to-revision R|latest|--to-time TIME --initial-cluster a=URL,... [...]\n" +
			"   [--initial-cluster-token T] [--name a] [--data-dir-template DIR] [--config-dir DIR] [--move-aside] [--dry-run]",
		Description: restoreDescription,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "from", Usage: "snapshot `SOURCE`: a file, or a bucket URL with --snapshot"},
			&cli.StringFlag{Name: "snapshot", Usage: "snapshot `NAME` in the bucket, or latest (the newest complete one, of --tag)"},
			flagTag,
			&cli.StringFlag{Name: "initial-cluster", Usage: "the new cluster as `NAME=PEER_URL,...`, each member once"},
			&cli.StringFlag{Name: "initial-cluster-token", Usage: "the new cluster's `TOKEN`", DefaultText: "a fresh etcd-restore-<time>-<random>"},
			&cli.StringFlag{Name: "name", Usage: "restore only member `NAME` (run on each host)", DefaultText: "all members"},
			flagIdentity,
			&cli.BoolFlag{Name: "skip-hash-check", Usage: "restore a plain file without etcd's sha256 trailer (a db copied from a data dir)"},
			&cli.Uint64Flag{Name: "bump-revision", Usage: "raise the revision by `N` (with --mark-compacted; for Kubernetes)"},
			&cli.BoolFlag{Name: "mark-compacted", Usage: "mark the bumped revision compacted, so that old watches relist"},
			&cli.BoolFlag{Name: "move-aside", Usage: "rename existing data dirs and differing config files to <path>.old-<time>"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the snapshot and the targets, print the plan, write nothing"},
		}, append(append(memberFileFlags(), pointInTimeFlags()...), flagSpool, flagStall, flagQuiet, flagOutput, flagLogLevel)...),
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError(fmt.Errorf("restore: %w", err))
		},
		Action: func(c *cli.Context) error {
			err := backupFlagError(restoreAction(c), restoreBackupFlags)
			switch {
			case errors.Is(err, backup.ErrNoTrailer):
				err = fmt.Errorf("%w; to restore it without that check, add --skip-hash-check", err)
			case errors.Is(err, restore.ErrWouldOverwrite):
				err = fmt.Errorf("%w; add --move-aside to keep it as <path>.old-<time>, or choose other paths", err)
			}
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			return nil
		},
	}
}

// restoreBackupFlags names restore's flags for the backup package's input errors.
var restoreBackupFlags = map[backup.Field]string{
	backup.FieldBucket: "--from", backup.FieldSnapshot: "--snapshot", backup.FieldTag: "--tag",
	backup.FieldIdentity: "--identity", backup.FieldSpoolDir: "--spool-dir", backup.FieldStallTimeout: "--stall-timeout",
}

func restoreAction(c *cli.Context) error {
	if err := noArgsAndFormat(c); err != nil {
		return err
	}
	token := c.String("initial-cluster-token")
	if !c.IsSet("initial-cluster-token") {
		token = restore.NewToken(time.Now())
	}
	cfg := memberFiles(c)
	cfg.InitialCluster, cfg.Token, cfg.Name = c.String("initial-cluster"), token, c.String("name")
	cfg.RevisionBump, cfg.MarkCompacted = c.Uint64("bump-revision"), c.Bool("mark-compacted")
	plan, err := restore.NewPlan(cfg)
	if err != nil {
		return restoreInputError(err)
	}
	ids, err := identitiesFrom(c)
	if err != nil {
		return err
	}
	lg, err := newLogger(c.String("log-level"))
	if err != nil {
		return err
	}
	defer lg.Sync()
	src := restore.Source{From: c.String("from"), Snapshot: c.String("snapshot"), Tag: c.String("tag"), Identities: ids,
		SkipHashCheck: c.Bool("skip-hash-check"), SpoolDir: c.String("spool-dir"), Bucket: storeOptions(c), Progress: newProgress(c.Bool("quiet")), Logger: lg}
	var snap *restore.Snapshot
	var pit *restore.PointInTimeResult
	if to, err := pointInTime(c); err != nil {
		return err
	} else if to != nil {
		if snap, pit, err = openPointInTime(c, src, *to); err != nil {
			return err
		}
	} else {
		if err := src.Validate(); err != nil {
			return restoreInputError(err)
		}
		if snap, err = restore.OpenSnapshot(c.Context, src); err != nil {
			return err
		}
	}
	defer snap.Close()
	opts := restore.Options{MoveAside: c.Bool("move-aside"), DryRun: c.Bool("dry-run"), Logger: lg}
	jsonOut := c.String("write-out") == "json"
	if !opts.DryRun && !jsonOut {
		// The plan, before anything is written.
		planned, err := restore.Check(plan, snap, opts)
		if err != nil {
			return err
		}
		if pit != nil {
			printPointInTime(c.App.Writer, pit)
		}
		printRestorePlan(c.App.Writer, planned)
	}
	res, err := restore.Run(c.Context, plan, snap, opts)
	if err != nil {
		return err
	}
	steps := restore.NextSteps(plan, res)
	if jsonOut {
		return writeJSON(c.App.Writer, struct {
			*restore.Result
			PointInTime *restore.PointInTimeResult `json:"point_in_time,omitempty"`
			NextSteps   []string                   `json:"next_steps"`
		}{res, pit, steps})
	}
	if opts.DryRun {
		if pit != nil {
			printPointInTime(c.App.Writer, pit)
		}
		printRestorePlan(c.App.Writer, res)
	}
	printRestoreResult(c.App.Writer, res, steps)
	return nil
}

// memberFileFlags say where the files of new members go and the TLS
// settings written into them, for restore and migrate.
func memberFileFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "client-urls", Usage: "members' client URLs as `NAME=URL,...`", DefaultText: "peer URL host, port 2379"},
		&cli.StringFlag{Name: "data-dir-template", Value: "./" + restore.DefaultDataDirTemplate, Usage: "each member's data `DIR`; {name} is its name"},
		&cli.StringFlag{Name: "config-dir", Usage: "`DIR` for <name>.yml and <name>.env; {name} is its name", DefaultText: "the data dir's parent"},
		&cli.StringFlag{Name: "cert-file", Usage: "client TLS certificate `FILE` in the configs ({name} allowed)"},
		&cli.StringFlag{Name: "key-file", Usage: "client TLS key `FILE` in the configs"},
		&cli.StringFlag{Name: "trusted-ca-file", Usage: "client CA `FILE` in the configs"},
		&cli.BoolFlag{Name: "client-cert-auth", Usage: "require client certificates"},
		&cli.StringFlag{Name: "peer-cert-file", Usage: "peer TLS certificate `FILE` in the configs"},
		&cli.StringFlag{Name: "peer-key-file", Usage: "peer TLS key `FILE` in the configs"},
		&cli.StringFlag{Name: "peer-trusted-ca-file", Usage: "peer CA `FILE` in the configs"},
		&cli.BoolFlag{Name: "peer-client-cert-auth", Usage: "require peer client certificates"},
	}
}

// memberFiles reads the flags of memberFileFlags.
func memberFiles(c *cli.Context) restore.Config {
	return restore.Config{
		ClientURLs: c.String("client-urls"), DataDirTemplate: c.String("data-dir-template"), ConfigDir: c.String("config-dir"),
		TLS: restore.TLS{
			CertFile: c.String("cert-file"), KeyFile: c.String("key-file"), TrustedCAFile: c.String("trusted-ca-file"),
			ClientCertAuth: c.Bool("client-cert-auth"), PeerCertFile: c.String("peer-cert-file"), PeerKeyFile: c.String("peer-key-file"),
			PeerTrustedCAFile: c.String("peer-trusted-ca-file"), PeerClientCertAuth: c.Bool("peer-client-cert-auth"),
		},
	}
}

func printRestorePlan(w io.Writer, r *restore.Result) {
	s, p := r.Snapshot, r.Cluster
	if s.Inspected() {
		fmt.Fprintf(w, "snapshot %s (%s, %s): revision %d, %d keys, KV hash %d\n",
			s.Source, s.Encoding, humanize.IBytes(uint64(s.Size)), s.Revision, s.Keys, s.KVHash)
		fmt.Fprintf(w, "  checked: %s\n", strings.Join(s.Checks, ", "))
	} else {
		fmt.Fprintf(w, "snapshot %s (%s, %s)\n", s.Source, s.Encoding, humanize.IBytes(uint64(s.Size)))
		fmt.Fprintf(w, "  checked: %s; its revision, keys and KV hash are read while the data dirs are written\n", strings.Join(s.Checks, ", "))
	}
	fmt.Fprintf(w, "new cluster %s, token %s, %d members", p.ClusterID, p.Token, len(p.Members))
	if p.RevisionBump > 0 {
		fmt.Fprintf(w, ", revision bumped by %d to %d and marked compacted", p.RevisionBump, r.Revision)
	}
	fmt.Fprintln(w)
	tw := newTable(w)
	fmt.Fprintln(tw, "MEMBER\tID\tPEER URL\tCLIENT URL\tDATA DIR\tCONFIG")
	restoring := map[string]bool{}
	for _, m := range r.Members {
		restoring[m.Name] = true
	}
	for _, m := range p.Members {
		dir, conf := m.DataDir, m.ConfigFile
		if !restoring[m.Name] {
			dir, conf = "(on its own host)", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.ID, strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","), dir, conf)
	}
	tw.Flush()
	for _, m := range r.Members {
		for from, to := range m.MovedAside {
			fmt.Fprintf(w, "%s exists: moving it to %s\n", from, to)
		}
	}
	if r.DryRun {
		fmt.Fprintln(w, "dry run: nothing written")
	}
}

func printRestoreResult(w io.Writer, r *restore.Result, steps []string) {
	if !r.DryRun {
		var how []string
		for _, m := range r.Members {
			how = append(how, fmt.Sprintf("%s (%s)", m.Name, m.Database))
		}
		s := r.Snapshot
		fmt.Fprintf(w, "restored %d members in %s: %s\n", len(r.Members), r.Duration, strings.Join(how, ", "))
		fmt.Fprintf(w, "  snapshot checked: %s; revision %d, %d keys, KV hash %d\n", strings.Join(s.Checks, ", "), s.Revision, s.Keys, s.KVHash)
		fmt.Fprintf(w, "  every data dir checked: the member's own WAL, the cluster's members, revision %d, and the key space of copies\n", r.Revision)
	}
	fmt.Fprintln(w, "next steps:")
	for _, s := range steps {
		fmt.Fprintln(w, "  "+s)
	}
}
