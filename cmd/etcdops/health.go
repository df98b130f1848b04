package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/health"
)

// exitHealthUnknown is health's exit code for bad input: UNKNOWN, as a
// Nagios plugin's (health's exit codes are the verdict's, not main's).
const exitHealthUnknown = int(health.Unknown)

// healthUsage marks err as bad input to health (exit code 3).
func healthUsage(err error) error { return &exitError{code: exitHealthUnknown, err: err} }

func healthCommand() *cli.Command {
	th := health.DefaultThresholds()
	return &cli.Command{
		Name:      "health",
		Usage:     "check a cluster's health for people and monitoring scripts",
		UsageText: "etcdops health [--endpoints URLS | --cluster] [-w table|json|prometheus|nagios] [options]",
		Description: "Checks every endpoint at once, each within --command-timeout (the dial included): status, a read\n" +
			"through raft (etcdctl endpoint health's rules), alarms and the member list; then judges the cluster\n" +
			"as a whole: quorum, one leader all members follow, learners, raft lag, alarms, database size against\n" +
			"its quota, version skew and, with --backups, the age of the newest snapshot.\n\n" +
			"Output (-w): table (for people; the verdict is on the last line), json (every endpoint, schema in\n" +
			"health/report.schema.json), prometheus (text format for node_exporter's textfile collector,\n" +
			"metrics etcdops_*), nagios (one status line with performance data).\n\n" +
			"Exit codes, as a Nagios plugin's:\n" +
			"  0 OK        all is well\n" +
			"  1 WARNING   degraded: a member or endpoint down with quorum held, a learner, DB over\n" +
			"              --warn-db-percent, raft lag over --warn-raft-lag, version skew, backups missing\n" +
			"              or older than --max-backup-age\n" +
			"  2 CRITICAL  no quorum, no leader, members disagree on the leader, an alarm (NOSPACE, CORRUPT),\n" +
			"              DB over --crit-db-percent\n" +
			"  3 UNKNOWN   bad arguments, no endpoint answered, or the backups could not be listed",
		Flags: append(clientFlags(),
			&cli.BoolFlag{Name: "cluster", Usage: "check every member's client URLs, read from the member list (as etcdctl --cluster)"},
			&cli.StringFlag{Name: "write-out", Aliases: []string{"w"}, Value: string(health.FormatTable),
				Usage: "output `FORMAT`: table, json, prometheus or nagios"},
			&cli.Float64Flag{Name: "warn-db-percent", Value: th.WarnDBPercent, Usage: "warn when a member's database reaches `PERCENT` of its quota"},
			&cli.Float64Flag{Name: "crit-db-percent", Value: th.CritDBPercent, Usage: "critical when a member's database reaches `PERCENT` of its quota"},
			&cli.Uint64Flag{Name: "warn-raft-lag", Value: th.WarnRaftLag, Usage: "warn when a member is more than `N` raft entries behind another (0: never)"},
			&cli.StringFlag{Name: "backups", Usage: "bucket `URL` where etcdops backup stores snapshots (file://, s3://, gs://, azblob://; ?prefix=...)"},
			&cli.StringFlag{Name: "tag", Usage: "judge only the snapshots tagged `TAG` (default: any)"},
			&cli.DurationFlag{Name: "max-backup-age", Usage: "warn when the newest snapshot is older than `DURATION` (needs --backups)"},
		),
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return healthUsage(fmt.Errorf("health: %w", err))
		},
		Action: runHealth,
	}
}

func runHealth(c *cli.Context) error {
	opts, th, format, err := healthOptions(c)
	if err != nil {
		return healthUsage(fmt.Errorf("health: %w", err))
	}
	if raw := c.String("backups"); raw != "" {
		store, err := backup.OpenStore(c.Context, raw)
		if err != nil {
			return healthUsage(fmt.Errorf("health: %w", backupFlagError(err, map[backup.Field]string{backup.FieldBucket: "--backups"})))
		}
		defer store.Close()
		opts.Backups = &health.StoreSource{Store: store}
	}
	report, err := health.Check(c.Context, opts)
	if err != nil {
		return healthUsage(err)
	}
	verdict := health.Evaluate(report, th)
	if err := health.Render(c.App.Writer, format, report, verdict, th); err != nil {
		return healthUsage(fmt.Errorf("health: %w", err))
	}
	if verdict.Status == health.OK {
		return nil
	}
	return &exitError{code: int(verdict.Status), err: fmt.Errorf("health: %s: %s", verdict.Status, verdict.Reasons[0].Message)}
}

// healthOptions turns the flags into the options of the check.
func healthOptions(c *cli.Context) (health.Options, health.Thresholds, health.Format, error) {
	var none health.Options
	if c.NArg() > 0 {
		return none, health.Thresholds{}, "", fmt.Errorf("unexpected arguments %q: endpoints go in --endpoints", c.Args().Slice())
	}
	format, err := health.ParseFormat(c.String("write-out"))
	if err != nil {
		return none, health.Thresholds{}, "", err
	}
	cfg, err := clientConfig(c)
	if err != nil {
		return none, health.Thresholds{}, "", errors.Unwrap(err)
	}
	if cfg.CommandTimeout <= 0 {
		return none, health.Thresholds{}, "", errors.New("--command-timeout: expected a positive duration: it bounds each endpoint's check")
	}
	th := health.Thresholds{
		WarnDBPercent: c.Float64("warn-db-percent"),
		CritDBPercent: c.Float64("crit-db-percent"),
		WarnRaftLag:   c.Uint64("warn-raft-lag"),
		MaxBackupAge:  c.Duration("max-backup-age"),
	}
	if err := th.Validate(); err != nil {
		return none, health.Thresholds{}, "", thresholdFlagError(err)
	}
	opts := health.Options{Client: *cfg, Cluster: c.Bool("cluster"), Timeout: cfg.CommandTimeout, BackupTag: c.String("tag")}
	switch raw := c.String("backups"); {
	case raw == "" && (c.IsSet("max-backup-age") || c.IsSet("tag")):
		return none, health.Thresholds{}, "", errors.New("--max-backup-age and --tag: given without --backups")
	case raw != "":
		u, err := url.Parse(raw)
		if err != nil || u.Scheme == "" {
			return none, health.Thresholds{}, "", fmt.Errorf("--backups %q: expected a bucket URL such as s3://bucket?prefix=etcd/ or file:///var/backups/etcd", raw)
		}
		opts.BackupURL = u.Redacted()
		if !c.IsSet("max-backup-age") {
			return none, health.Thresholds{}, "", errors.New("--backups: expected --max-backup-age too, such as --max-backup-age 25h")
		}
		if strings.ContainsAny(opts.BackupTag, "/_") {
			return none, health.Thresholds{}, "", fmt.Errorf("--tag %q: expected a tag without '/' or '_'", opts.BackupTag)
		}
	}
	return opts, th, format, nil
}
