package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/etcdops/etcdops/migrate"
	"github.com/etcdops/etcdops/restore"
)

const migrateExitCodes = "Exit codes: 0 done (or nothing to do), 1 the migration failed or the cluster is unreachable\n" +
	"(the journal says what ran; a new member that did not start or catch up was removed again),\n" +
	"2 bad flags, a plan etcd's rules forbid, or an unhealthy cluster (nothing was changed)."

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "move a live cluster onto new members, or scale it out or in, one safe step at a time",
		Description: "plan prints the steps and, after each, the voting members, the quorum and the failures the cluster\n" +
			"still tolerates; run carries them out; abort removes the learners a run added.\n\n" + migrateExitCodes,
		Subcommands: []*cli.Command{migratePlanCommand(), migrateRunCommand(), migrateAbortCommand()},
	}
}

// migrateFlags are the flags of plan and run: the same command line plans
// and runs.
func migrateFlags() []cli.Flag {
	flags := append(clientFlags(),
		&cli.StringSliceFlag{Name: "add", Usage: "add member `NAME=PEERURL` (repeatable)"},
		&cli.StringSliceFlag{Name: "remove", Usage: "remove member `NAME` (repeatable)"},
		&cli.StringFlag{Name: "order", Value: string(migrate.OneByOne), Usage: "`ORDER` of the changes: one-by-one (add one, remove one) or add-first"},
		&cli.StringFlag{Name: "start-cmd", Usage: "shell `COMMAND` that starts a new member and returns; placeholders " + strings.Join(migrate.Placeholders, " "),
			DefaultText: "print the start command and wait for the member"},
		&cli.StringFlag{Name: "stop-cmd", Usage: "shell `COMMAND` that stops an old member gracefully (SIGTERM) and returns; same placeholders. " +
			"With it each old member is stopped before its removal, so that no write in flight on it fails",
			DefaultText: "a removed member stops by itself; writes in flight on it fail"},
		&cli.StringFlag{Name: "state-file", Usage: "journal `FILE` of the migration", DefaultText: "./migrate-<cluster id>.json"},
		&cli.DurationFlag{Name: "step-timeout", Aliases: []string{"timeout"}, Value: 5 * time.Minute,
			Usage: "how long each step may take, a new member's start and catch-up included (not the whole migration)"},
		&cli.Uint64Flag{Name: "max-lag", Value: 1000, Usage: "a new member has caught up when its applied index is at most `N` entries behind the leader's"},
	)
	return append(append(flags, memberFileFlags()...), flagOutput, flagQuiet, flagLogLevel)
}

// migratePlanUsage names every flag that shapes the plan: plan and run
// show it alike, so that the plan printed is the plan run.
const migratePlanUsage = "--endpoints URLS [--add NAME=PEERURL ...] [--remove NAME ...] [--order one-by-one|add-first]\n" +
	"   [--stop-cmd CMD] [--state-file FILE]"

// The "event" of each line of `migrate run -w json` (JSON Lines).
const (
	migrateEventStep     = "step"
	migrateEventFinished = "finished"
)

func migratePlanCommand() *cli.Command {
	return &cli.Command{
		Name:      "plan",
		Usage:     "print the steps of a migration; change nothing",
		UsageText: "etcdops migrate plan " + migratePlanUsage + " [-w table|json]",
		Flags:     migrateFlags(),
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError(fmt.Errorf("migrate plan: %w", err))
		},
		Action: func(c *cli.Context) error {
			if err := migratePlan(c); err != nil {
				return fmt.Errorf("migrate plan: %w", err)
			}
			return nil
		},
	}
}

// migrateInput is what the flags of plan and run ask for.
type migrateInput struct {
	conn       migrate.Connection
	req        migrate.Request
	newMembers []restore.Member
}

// migrateRequest reads and checks the flags that say what to do, and
// makes the logger; the caller syncs in.conn.Logger.
func migrateRequest(c *cli.Context) (*migrateInput, error) {
	if err := noArgsAndFormat(c); err != nil {
		return nil, err
	}
	ccfg, err := clientConfig(c)
	if err != nil {
		return nil, err
	}
	if ccfg.CommandTimeout <= 0 {
		return nil, usageError(errors.New("--command-timeout: expected a positive duration: it bounds each request"))
	}
	in := &migrateInput{conn: migrate.Connection{Client: *ccfg, Timeout: ccfg.CommandTimeout},
		req: migrate.Request{Removes: c.StringSlice("remove"), Order: migrate.Order(c.String("order")), Drain: c.String("stop-cmd") != ""}}
	var cluster []string
	for _, raw := range c.StringSlice("add") {
		a, err := migrate.ParseAdd(raw)
		if err != nil {
			return nil, migrateInputError(err)
		}
		in.req.Adds = append(in.req.Adds, a)
		cluster = append(cluster, a.Name+"="+a.PeerURL)
	}
	for _, flag := range []string{"start-cmd", "stop-cmd"} {
		if err := migrate.CheckTemplate(flag, c.String(flag)); err != nil {
			return nil, migrateInputError(err)
		}
	}
	if c.Duration("step-timeout") <= 0 {
		return nil, usageError(fmt.Errorf("--step-timeout %v: expected a positive duration", c.Duration("step-timeout")))
	}
	if len(cluster) > 0 {
		files := memberFiles(c)
		files.InitialCluster = strings.Join(cluster, ",")
		if in.newMembers, err = restore.Members(files); err != nil {
			var ce *restore.ConfigError
			if errors.As(err, &ce) && ce.Field == restore.FieldInitialCluster {
				// The adds, as etcd would read them: two with one name or peer URL.
				return nil, usageError(fmt.Errorf("--add: %s", ce.Reason))
			}
			return nil, restoreInputError(err)
		}
	} else if c.IsSet("client-urls") {
		return nil, usageError(errors.New("--client-urls: expected only with --add"))
	}
	if in.conn.Logger, err = newLogger(c.String("log-level")); err != nil {
		return nil, err
	}
	return in, nil
}

// migrateInputError marks the migrate package's input errors as usage
// errors, naming the flag.
func migrateInputError(err error) error {
	var ie *migrate.InputError
	if !errors.As(err, &ie) {
		return err
	}
	what := "--" + ie.Input
	if ie.Input == "cluster" {
		what = "cluster"
	}
	if ie.Value == "" {
		return usageError(fmt.Errorf("%s: %s", what, ie.Reason))
	}
	return usageError(fmt.Errorf("%s %q: %s", what, ie.Value, ie.Reason))
}

func migratePlan(c *cli.Context) error {
	in, err := migrateRequest(c)
	if err != nil {
		return err
	}
	defer in.conn.Logger.Sync()
	plan, done, journal, err := migrate.Preview(c.Context, migrate.Options{Connection: in.conn, Request: in.req, StateFile: c.String("state-file")})
	if err != nil {
		return migrateRunError(err)
	}
	if c.String("write-out") == "json" {
		return migrate.WriteJSON(c.App.Writer, plan, journal, done)
	}
	if journal != "" {
		fmt.Fprintf(c.App.Writer, "journal %s: %d of %d steps done\n", journal, done, len(plan.Steps))
	}
	return migrate.WriteTable(c.App.Writer, plan)
}

func migrateRunCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "carry out a migration, or resume the one its journal records",
		UsageText: "etcdops migrate run " + migratePlanUsage + "\n" +
			"   [--start-cmd CMD] [--config-dir DIR] [--data-dir-template DIR] [--client-urls NAME=URL,...] [--step-timeout D] [-w table|json]",
		Description: "For each new member: add it as a learner, write <name>.yml and <name>.env (initial-cluster-state\n" +
			"existing), run --start-cmd (or print the start command and wait), wait until its applied index is\n" +
			"within --max-lag of the leader's, promote it. For each old member: move leadership away if it leads,\n" +
			"drain it (run --stop-cmd, wait until it no longer answers: its clients move to other members), then\n" +
			"remove it through another member. Without --stop-cmd it is removed while it runs and stops by itself.\n" +
			"The cluster must be healthy before every step (a drained member may be down);\n" +
			"--step-timeout bounds each. The journal (--state-file) is written before and after every change: rerun\n" +
			"the same command after a crash or Ctrl-C to resume. A new member that does not start or catch up in\n" +
			"time is removed again (exit 1).\n\n" + migrateExitCodes,
		Flags: migrateFlags(),
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError(fmt.Errorf("migrate run: %w", err))
		},
		Action: func(c *cli.Context) error {
			if err := migrateRunAction(c); err != nil {
				return fmt.Errorf("migrate run: %w", err)
			}
			return nil
		},
	}
}

func migrateAbortCommand() *cli.Command {
	return &cli.Command{
		Name:      "abort",
		Usage:     "remove the learners a migration added, and mark its journal aborted",
		UsageText: "etcdops migrate abort --endpoints URLS --state-file FILE [--timeout D] [-w table|json]",
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "state-file", Required: true, Usage: "journal `FILE` of the migration"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "how long the abort may take"},
			flagOutput, flagLogLevel),
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError(fmt.Errorf("migrate abort: %w", err))
		},
		Action: func(c *cli.Context) error {
			if err := migrateAbort(c); err != nil {
				return fmt.Errorf("migrate abort: %w", err)
			}
			return nil
		},
	}
}

func migrateRunAction(c *cli.Context) error {
	in, err := migrateRequest(c)
	if err != nil {
		return err
	}
	defer in.conn.Logger.Sync()
	files := memberFiles(c)
	jsonOut := c.String("write-out") == "json"
	out := c.App.Writer
	o := migrate.Options{
		Connection: in.conn, Request: in.req, New: in.newMembers,
		Files: func(name string) (string, string, string) {
			d, conf, env, _ := restore.Paths(files, name)
			return d, conf, env
		},
		StartCmd: c.String("start-cmd"), StopCmd: c.String("stop-cmd"), StateFile: c.String("state-file"),
		StepTimeout: c.Duration("step-timeout"), MaxLag: c.Uint64("max-lag"), Operator: out,
		Events: func(ev migrate.Event) { printMigrateEvent(out, ev, jsonOut) },
	}
	if jsonOut {
		o.Operator = os.Stderr
	}
	if !c.Bool("quiet") && onTerminal() {
		o.Progress = os.Stderr
	}
	res, err := migrate.Run(c.Context, o)
	if err != nil {
		return migrateRunError(err)
	}
	if jsonOut {
		return json.NewEncoder(out).Encode(struct {
			Event string `json:"event"`
			*migrate.Result
		}{migrateEventFinished, res})
	}
	printMigrateResult(out, res)
	return nil
}

// migrateRunError marks bad input (a plan etcd's rules forbid, a journal of
// another migration) as usage errors.
func migrateRunError(err error) error {
	var se *migrate.StateError
	if errors.As(err, &se) {
		return usageError(fmt.Errorf("--state-file %s: %s", se.Path, se.Reason))
	}
	return migrateInputError(err)
}

func printMigrateEvent(w io.Writer, ev migrate.Event, jsonOut bool) {
	if jsonOut {
		json.NewEncoder(w).Encode(struct {
			Kind string `json:"event"`
			migrate.Event
		}{migrateEventStep, ev})
		return
	}
	detail := ev.Detail
	if ev.Status != migrate.EventDone {
		detail = ev.Status + ": " + detail
	}
	fmt.Fprintf(w, "[%d/%d] %s %s: %s (voters %s, quorum %d, tolerates %d)\n", ev.Step, ev.Of, ev.Action, ev.Member, detail,
		strings.Join(ev.Voters, ","), ev.Quorum, ev.Tolerates)
}

func printMigrateResult(w io.Writer, res *migrate.Result) {
	if res.NothingToDo {
		fmt.Fprintf(w, "nothing to do: %s records a finished migration\n", res.StateFile)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "MEMBER\tID\tROLE\tPEER URLS\tCLIENT URLS")
	for _, m := range res.Members {
		role := "voter"
		if m.IsLearner {
			role = "learner"
		}
		fmt.Fprintf(tw, "%s\t%x\t%s\t%s\t%s\n", m.Name, m.ID, role, strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","))
	}
	tw.Flush()
	fmt.Fprintf(w, "endpoints for clients (e.g. kube-apiserver --etcd-servers): %s\n", strings.Join(res.Endpoints, ","))
	names := make([]string, 0, len(res.OldDataDirs))
	for name := range res.OldDataDirs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "removed member %s left its data dir in place, on its host: %s (per --data-dir-template)\n", name, res.OldDataDirs[name])
	}
	fmt.Fprintf(w, "journal: %s\n", res.StateFile)
}

func migrateAbort(c *cli.Context) error {
	if err := noArgsAndFormat(c); err != nil {
		return err
	}
	ccfg, err := clientConfig(c)
	if err != nil {
		return err
	}
	if c.Duration("timeout") <= 0 {
		return usageError(fmt.Errorf("--timeout %v: expected a positive duration", c.Duration("timeout")))
	}
	lg, err := newLogger(c.String("log-level"))
	if err != nil {
		return err
	}
	defer lg.Sync()
	res, err := migrate.Abort(c.Context, migrate.Options{
		Connection: migrate.Connection{Client: *ccfg, Timeout: ccfg.CommandTimeout, Logger: lg},
		StateFile:  c.String("state-file"), StepTimeout: c.Duration("timeout"),
	})
	if err != nil {
		return migrateRunError(err)
	}
	if c.String("write-out") == "json" {
		return json.NewEncoder(c.App.Writer).Encode(res)
	}
	if len(res.Removed) == 0 {
		fmt.Fprintln(c.App.Writer, "no learner of this migration to remove")
	} else {
		fmt.Fprintf(c.App.Writer, "removed learners: %s\n", strings.Join(res.Removed, ", "))
	}
	for _, name := range res.Removed {
		if dir, ok := res.DataDirs[name]; ok {
			fmt.Fprintf(c.App.Writer, "before adding %s again, move its data dir %s aside on its host: it may hold the WAL of the removed learner\n", name, dir)
		}
	}
	if len(res.Voting) > 0 {
		fmt.Fprintf(c.App.Writer, "added members that vote already and stay: %s\n", strings.Join(res.Voting, ", "))
	}
	fmt.Fprintf(c.App.Writer, "journal %s marked aborted\n", res.StateFile)
	return nil
}
