package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/maintenance"
	"github.com/etcdops/etcdops/schedule"
)

// jobFlags are the flags a --config file replaces.
var jobFlags = []string{"cron", "verify-cron", "to", "tag", "member", "compress", "age-recipient", "age-recipients-file",
	"keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-within",
	"jitter", "catch-up", "heartbeat-url", "heartbeat-fail-url", "pitr", "pitr-interval", "pitr-segment-size", "pitr-keep-within",
	"defrag-cron", "all", "min-free", "min-free-fraction", "quota-fraction", "quota-backend-bytes", "max-lag",
	"compact", "compact-keep-revisions", "no-disarm"}

func scheduleCommand() *cli.Command {
	flags := append(clientFlags(), saveFlags(false)...)
	flags = append(flags, keepFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "cron", Usage: "run at `SPEC`: 5 cron fields or @hourly, @daily, \"@every 30m\"; UTC unless it starts with CRON_TZ=Zone"},
		&cli.StringFlag{Name: "verify-cron", Usage: "restore-test the newest snapshot at `SPEC`"},
		&cli.StringFlag{Name: "config", Usage: "YAML `FILE` of jobs (instead of --cron, --to and the other job flags)"},
		&cli.StringFlag{Name: "jitter", Usage: "wait a random delay of up to `DURATION` before each run"},
		&cli.StringFlag{Name: "catch-up", Value: "once", Usage: "`MODE` at start when the most recent due slot is newer than the newest snapshot: once or none"},
		&cli.StringFlag{Name: "heartbeat-url", Usage: "POST to `URL` after each successful save (a dead-man's switch)"},
		&cli.StringFlag{Name: "heartbeat-fail-url", Usage: "POST to `URL` after each failed run"},
		&cli.BoolFlag{Name: "pitr", Usage: "also stream every change to the bucket between snapshots (point-in-time recovery; needs --cron)"},
		&cli.StringFlag{Name: "pitr-interval", Usage: "have every change in the bucket within about `DURATION` of it (default 1s)"},
		&cli.StringFlag{Name: "pitr-segment-size", Usage: "flush the change log sooner when `SIZE` of changes wait (default 16MiB)"},
		flagPITRKeepWithin,
		&cli.StringFlag{Name: "defrag-cron", Usage: "run a rolling defrag of the cluster (as etcdops defrag, tuned by the flags below) at `SPEC`; with or without --cron"},
	)
	flags = append(flags, defragTuningFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "metrics-addr", Usage: "serve /metrics and /healthz on `HOST:PORT`"},
		&cli.DurationFlag{Name: "max-age", Usage: "/healthz answers 503 when a job's last success is older than `DURATION`"},
		flagIdentity, flagSpool, flagStall, flagLogLevel,
	)
	return &cli.Command{
		Name:  "schedule",
		Usage: "take snapshots into a bucket on a schedule, until stopped",
		UsageText: "etcdops schedule --cron SPEC --endpoints URLS --to URL [--tag TAG] [--keep-daily N …] [--metrics-addr HOST:PORT]\n" +
			"   etcdops schedule --defrag-cron SPEC --endpoints URLS [--compact] [--min-free SIZE …] [--cron SPEC --to URL …]\n" +
			"   etcdops schedule --config FILE [--endpoints URLS] [--metrics-addr HOST:PORT]",
		Description: "Each run is a backup save and then its retention (never after a failed save; a failure to prune\n" +
			"does not fail the run). Runs of a job never overlap: one due while the last is going is skipped.\n" +
			"At start, a job whose most recent due slot is newer than its newest snapshot in the bucket runs once\n" +
			"at once, for that slot; a slot whose snapshot exists is done. A spec with no run in the next five\n" +
			"years (30 February) is refused.\n" +
			"\"@every D\" runs at multiples of D since midnight UTC. SIGTERM aborts an upload in progress.\n" +
			"--defrag-cron runs etcdops defrag's rolling defrag (stopping at the first failure) at its slots; no\n" +
			"two rolling defrags of a cluster overlap, whichever process runs them (a lock in etcd). SIGTERM\n" +
			"stops one between members.\n\n" +
			"Exit codes: 0 stopped by SIGTERM/SIGINT, 1 a bucket or the metrics address cannot be used,\n" +
			"2 bad flags, schedule or config file (nothing was started).",
		Flags: flags,
		Action: withBackupFlags(map[backup.Field]string{backup.FieldBucket: "--to"}, func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cfg, err := scheduleConfig(c)
			if err != nil {
				return err
			}
			lg, err := newLogger(c.String("log-level"))
			if err != nil {
				return err
			}
			defer lg.Sync()
			cfg.Logger = lg
			for i := range cfg.Jobs {
				cfg.Jobs[i].Save.Logger = lg
			}
			s, err := schedule.New(cfg)
			if err != nil {
				return err
			}
			return s.Run(c.Context)
		}),
	}
}

// scheduleConfig turns the flags, or the --config file, into the daemon's
// configuration.
func scheduleConfig(c *cli.Context) (schedule.Config, error) {
	var cfg schedule.Config
	ccfg, err := clientConfig(c)
	if err != nil {
		return cfg, err
	}
	ids, err := identitiesFrom(c)
	if err != nil {
		return cfg, err
	}
	cfg.MetricsAddr, cfg.MaxAge, cfg.Bucket = c.String("metrics-addr"), c.Duration("max-age"), storeOptions(c)
	cfg.Verify = backup.VerifyConfig{Identities: ids, SpoolDir: c.String("spool-dir")}
	base := backup.SaveConfig{Endpoints: ccfg.Endpoints, Dial: dialer(ccfg), CommandTimeout: ccfg.CommandTimeout, EtcdopsVersion: etcdopsVersion()}
	dbase := maintenance.Options{Client: *ccfg, RequestTimeout: ccfg.CommandTimeout}

	if path := c.String("config"); path != "" {
		for _, f := range jobFlags {
			if c.IsSet(f) {
				return cfg, usageError(fmt.Errorf("--%s: set in the jobs of --config %s, not as a flag", f, path))
			}
		}
		jcs, err := schedule.LoadConfig(path)
		if err != nil {
			return cfg, usageError(fmt.Errorf("--config: %w", err))
		}
		if cfg.Jobs, err = schedule.Jobs(jcs, base); err != nil {
			return cfg, usageError(fmt.Errorf("--config %s: %w", path, err))
		}
		if cfg.Defrags, err = schedule.DefragJobs(jcs, dbase); err != nil {
			return cfg, usageError(fmt.Errorf("--config %s: %w", path, err))
		}
		return cfg, nil
	}
	if cfg.Defrags, err = schedule.DefragJobs([]schedule.JobConfig{defragJobConfig(c)}, dbase); err != nil {
		return cfg, jobFlagError(err)
	}
	if len(cfg.Defrags) > 0 && !c.IsSet("cron") && !c.IsSet("to") && !c.Bool("pitr") {
		return cfg, nil // a rolling defrag alone
	}

	if c.Bool("pitr") && !c.IsSet("cron") {
		return cfg, usageError(errors.New("--pitr: needs --cron (the change log follows the job's snapshots)"))
	}
	for _, f := range []string{"cron", "to"} {
		if !c.IsSet(f) {
			return cfg, usageError(fmt.Errorf("--%s: required (or --config FILE)", f))
		}
	}
	codec, err := codecFrom(c)
	if err != nil {
		return cfg, err
	}
	policy, err := policyFrom(c)
	if err != nil {
		return cfg, err
	}
	name := c.String("tag")
	if name == "" {
		name = "backup"
	}
	jc := schedule.JobConfig{Name: name, Cron: c.String("cron"), VerifyCron: c.String("verify-cron"), To: c.String("to"),
		Tag: c.String("tag"), Member: c.String("member"), Jitter: c.String("jitter"), CatchUp: c.String("catch-up"),
		HeartbeatURL: c.String("heartbeat-url"), HeartbeatFailURL: c.String("heartbeat-fail-url"),
		PITR: c.Bool("pitr"), PITRInterval: c.String("pitr-interval"), PITRSegmentSize: c.String("pitr-segment-size"),
		PITRKeepWithin: c.String("pitr-keep-within"),
		KeepLast:       policy.Last, KeepHourly: policy.Hourly, KeepDaily: policy.Daily, KeepWeekly: policy.Weekly, KeepMonthly: policy.Monthly}
	if policy.Within > 0 {
		jc.KeepWithin = policy.Within.String()
	}
	jobs, err := schedule.Jobs([]schedule.JobConfig{jc}, base)
	if err != nil {
		return cfg, jobFlagError(err)
	}
	jobs[0].Save.Codec = codec
	cfg.Jobs = jobs
	return cfg, nil
}

// jobFlagError is a usage error naming the flag of a job setting.
func jobFlagError(err error) error {
	var ce *schedule.ConfigError
	if errors.As(err, &ce) {
		return usageError(fmt.Errorf("--%s: %w", ce.Field, ce.Err))
	}
	return usageError(err)
}

// defragJobConfig is the rolling defrag the flags ask for (none without
// --defrag-cron: then its tuning flags are refused).
func defragJobConfig(c *cli.Context) schedule.JobConfig {
	jc := schedule.JobConfig{Name: "defrag", DefragCron: c.String("defrag-cron"), All: c.Bool("all"), Compact: c.Bool("compact"), NoDisarm: c.Bool("no-disarm")}
	if c.IsSet("min-free") {
		jc.MinFree = c.String("min-free")
	}
	if c.IsSet("quota-backend-bytes") {
		jc.QuotaBackendBytes = c.String("quota-backend-bytes")
	}
	if c.IsSet("min-free-fraction") {
		jc.MinFreeFraction = new(c.Float64("min-free-fraction"))
	}
	if c.IsSet("quota-fraction") {
		jc.QuotaFraction = new(c.Float64("quota-fraction"))
	}
	if c.IsSet("compact-keep-revisions") {
		jc.CompactKeepRevisions = new(c.Int64("compact-keep-revisions"))
	}
	if c.IsSet("max-lag") {
		jc.MaxLag = new(c.Uint64("max-lag"))
	}
	return jc
}
