package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/etcdops/etcdops/defrag"
	"github.com/etcdops/etcdops/maintenance"
	"github.com/etcdops/etcdops/schedule"
)

const defragExitCodes = "Exit codes: 0 done (or nothing to do), 1 a member failed, the run was interrupted or the cluster\n" +
	"is unreachable (the output names the member and what was seen), 2 bad flags (nothing was changed)."

// defragRuleFlags change the rule; --all replaces it.
var defragRuleFlags = []string{"min-free", "min-free-fraction", "quota-fraction"}

// defragTuningFlags say which members a rolling defrag takes and how:
// etcdops defrag's and etcdops schedule's (with --defrag-cron).
func defragTuningFlags() []cli.Flag {
	rule := defrag.DefaultRule()
	return []cli.Flag{
		&cli.BoolFlag{Name: "all", Usage: "defragment every member (but learners), by no rule"},
		&cli.StringFlag{Name: "min-free", Value: "100MiB", Usage: "defragment a member with at least `SIZE` free (and --min-free-fraction)"},
		&cli.Float64Flag{Name: "min-free-fraction", Value: rule.MinFreeFraction, Usage: "… and at least this `FRACTION` of its file free"},
		&cli.Float64Flag{Name: "quota-fraction", Value: rule.QuotaFraction, Usage: "defragment a member whose file is above this `FRACTION` of its quota"},
		&cli.StringFlag{Name: "quota-backend-bytes", Value: "2GiB", Usage: "quota `SIZE` of members whose status reports none (etcd before 3.6)"},
		&cli.Uint64Flag{Name: "max-lag", Value: maintenance.DefaultMaxLag, Usage: "a member has caught up when its applied index is at most `N` entries behind the leader's"},
		&cli.BoolFlag{Name: "compact", Usage: "compact the cluster first (bounded by --compact-keep-revisions and point-in-time logs)"},
		&cli.Int64Flag{Name: "compact-keep-revisions", Value: maintenance.DefaultKeepRevisions, Usage: "with --compact, keep the last `N` revisions"},
		&cli.BoolFlag{Name: "no-disarm", Usage: "leave a NOSPACE alarm active after the run"},
	}
}

func defragCommand() *cli.Command {
	flags := append(clientFlags(), &cli.BoolFlag{Name: "dry-run", Usage: "print the decision per member; change nothing"})
	flags = append(flags, defragTuningFlags()...)
	flags = append(flags,
		&cli.DurationFlag{Name: "timeout", Usage: "time each member's defragmentation and catch-up may take",
			DefaultText: "1m plus 1s per 8 MiB of its database"},
		&cli.BoolFlag{Name: "continue-on-error", Usage: "go on with the next member after one fails (exit 1 at the end)"},
		flagOutput, flagQuiet, flagLogLevel,
	)
	return &cli.Command{
		Name:  "defrag",
		Usage: "compact and defragment a live cluster one member at a time, health-gated, leader last",
		UsageText: "etcdops defrag --endpoints URLS [--dry-run] [--compact] [--all | --min-free SIZE --min-free-fraction F\n" +
			"   --quota-fraction F] [--timeout D] [--continue-on-error] [--no-disarm] [-w table|json]",
		Description: "Reads every member's status (through the member list of --endpoints) and prints, per member, its\n" +
			"database size, size in use, free space, quota and whether it is defragmented and why: when at least\n" +
			"--min-free and --min-free-fraction of its file are free, or its file is above --quota-fraction of\n" +
			"its quota (from the member's status; --quota-backend-bytes for members that report none).\n" +
			"--dry-run stops there. Then, followers first and the leader last (after leadership moves to the\n" +
			"most caught-up follower), one member at a time: before each, the cluster must be healthy (the checks\n" +
			"of etcdops health, every applied index within --max-lag of the leader's, no alarm but NOSPACE);\n" +
			"after each, the member must answer and catch up. Learners are skipped: etcd refuses them the request.\n" +
			"--compact first compacts, keeping the last --compact-keep-revisions and every revision a running\n" +
			"point-in-time log still needs. A NOSPACE alarm is disarmed at the end when every member is below\n" +
			"--quota-fraction of its quota (--no-disarm leaves it). Ctrl-C stops between members.\n\n" + defragExitCodes,
		Flags: flags,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError(fmt.Errorf("defrag: %w", err))
		},
		Action: func(c *cli.Context) error {
			if err := runDefrag(c); err != nil {
				return fmt.Errorf("defrag: %w", err)
			}
			return nil
		},
	}
}

// defragOptions turns the flags into the run's options.
func defragOptions(c *cli.Context) (maintenance.Options, error) {
	var none maintenance.Options
	if err := noArgsAndFormat(c); err != nil {
		return none, err
	}
	ccfg, err := clientConfig(c)
	if err != nil {
		return none, err
	}
	if ccfg.CommandTimeout <= 0 {
		return none, usageError(errors.New("--command-timeout: expected a positive duration: it bounds each request"))
	}
	if c.Bool("all") {
		for _, f := range defragRuleFlags {
			if c.IsSet(f) {
				return none, usageError(fmt.Errorf("--all and --%s: expected one of them: --all defragments every member by no rule", f))
			}
		}
	}
	rule := defrag.Rule{All: c.Bool("all"), MinFreeFraction: c.Float64("min-free-fraction"), QuotaFraction: c.Float64("quota-fraction")}
	if rule.MinFree, err = parseSize(c, "min-free"); err != nil {
		return none, err
	}
	if rule.FallbackQuota, err = parseSize(c, "quota-backend-bytes"); err != nil {
		return none, err
	}
	o := maintenance.Options{
		Client: *ccfg, RequestTimeout: ccfg.CommandTimeout, Rule: rule, MemberTimeout: c.Duration("timeout"), MaxLag: c.Uint64("max-lag"),
		Compact: c.Bool("compact"), KeepRevisions: c.Int64("compact-keep-revisions"), Disarm: !c.Bool("no-disarm"),
		ContinueOnError: c.Bool("continue-on-error"), DryRun: c.Bool("dry-run"),
	}
	if c.IsSet("timeout") && o.MemberTimeout <= 0 {
		return none, usageError(fmt.Errorf("--timeout %v: expected a positive duration", o.MemberTimeout))
	}
	if c.IsSet("max-lag") && o.MaxLag == 0 {
		return none, usageError(errors.New("--max-lag 0: expected at least 1 entry"))
	}
	if c.IsSet("compact-keep-revisions") && !o.Compact {
		return none, usageError(errors.New("--compact-keep-revisions: given without --compact"))
	}
	if err := o.Validate(); err != nil {
		return none, defragInputError(err)
	}
	return o, nil
}

// parseSize reads flag as a size: bytes, or with a unit (100MiB, 1.5GB).
func parseSize(c *cli.Context, flag string) (int64, error) {
	raw := c.String(flag)
	n, err := schedule.ParseSize(raw)
	switch {
	case errors.Is(err, schedule.ErrNegativeSize):
		return 0, usageError(fmt.Errorf("--%s %q: expected a size of 0 or more, such as 100MiB", flag, raw))
	case err != nil:
		return 0, usageError(fmt.Errorf("--%s %q: expected a size such as 100MiB or 1GB", flag, raw))
	}
	return n, nil
}

// defragFlags names the flag of each defrag.Field.
var defragFlags = map[defrag.Field]string{
	defrag.FieldMinFree:         "--min-free",
	defrag.FieldMinFreeFraction: "--min-free-fraction",
	defrag.FieldQuotaFraction:   "--quota-fraction",
	defrag.FieldFallbackQuota:   "--quota-backend-bytes",
	defrag.FieldTimeout:         "--timeout",
	defrag.FieldKeepRevisions:   "--compact-keep-revisions",
}

// defragInputError is err, or, for a *defrag.InputError, a usage error naming the flag.
func defragInputError(err error) error {
	var ie *defrag.InputError
	if !errors.As(err, &ie) {
		return err
	}
	return usageError(fmt.Errorf("%s %s: %s", defragFlags[ie.Field], ie.Value, ie.Reason))
}

func runDefrag(c *cli.Context) error {
	o, err := defragOptions(c)
	if err != nil {
		return err
	}
	if o.Logger, err = newLogger(c.String("log-level")); err != nil {
		return err
	}
	defer o.Logger.Sync()
	out := c.App.Writer
	jsonOut := c.String("write-out") == "json"
	o.Events = func(ev maintenance.Event) { printDefragEvent(out, ev, jsonOut) }
	if !c.Bool("quiet") && onTerminal() {
		o.Progress = os.Stderr
	}
	res, err := maintenance.Run(c.Context, o)
	if res != nil {
		if jsonOut {
			if werr := json.NewEncoder(out).Encode(struct {
				Event string `json:"event"`
				*maintenance.Result
			}{"finished", res}); werr != nil && err == nil {
				err = werr
			}
		} else if !res.DryRun {
			fmt.Fprintln(out)
			if werr := maintenance.WriteSummary(out, res); werr != nil && err == nil {
				err = werr
			}
		}
	}
	return defragInputError(err)
}

// printDefragEvent prints the plan as a table and each member's step on a
// line; with -w json, every event as one JSON line.
func printDefragEvent(w io.Writer, ev maintenance.Event, jsonOut bool) {
	switch {
	case jsonOut:
		json.NewEncoder(w).Encode(ev)
	case ev.Event == "plan":
		maintenance.WritePlan(w, ev.Plan)
	case ev.Step > 0:
		fmt.Fprintf(w, "[%d/%d] %s %s: %s\n", ev.Step, ev.Of, ev.Event, ev.Member, ev.Detail)
	case ev.Event != "skipped":
		fmt.Fprintf(w, "%s: %s\n", ev.Event, ev.Detail)
	}
}
