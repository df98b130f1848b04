package main

import (
	"errors"
	"fmt"
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
		Subcommands: []*cli.Command{migratePlanCommand()},
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
		&cli.StringFlag{Name: "stop-cmd", Usage: "shell `COMMAND` run after an old member was removed; same placeholders"},
		&cli.StringFlag{Name: "state-file", Usage: "journal `FILE` of the migration", DefaultText: "./migrate-<cluster id>.json"},
		&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "how long each step may take, a new member's start and catch-up included"},
		&cli.Uint64Flag{Name: "max-lag", Value: 1000, Usage: "a new member has caught up when its applied index is at most `N` entries behind the leader's"},
	)
	return append(append(flags, memberFileFlags()...), flagOutput, flagQuiet, flagLogLevel)
}

func migratePlanCommand() *cli.Command {
	return &cli.Command{
		Name:      "plan",
		Usage:     "print the steps of a migration; change nothing",
		UsageText: "etcdops migrate plan --endpoints URLS --add NAME=PEERURL ... --remove NAME ... [--order one-by-one|add-first] [-w table|json]",
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

// migrateRequest reads and checks the flags that say what to do.
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
		req: migrate.Request{Removes: c.StringSlice("remove"), Order: migrate.Order(c.String("order"))}}
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
	if c.Duration("timeout") <= 0 {
		return nil, usageError(fmt.Errorf("--timeout %v: expected a positive duration", c.Duration("timeout")))
	}
	if len(cluster) > 0 {
		files := memberFiles(c)
		files.InitialCluster = strings.Join(cluster, ",")
		if in.newMembers, err = restore.Members(files); err != nil {
			var ce *restore.ConfigError
			if errors.As(err, &ce) && ce.Field == "initial-cluster" {
				// The adds, as etcd would read them: two with one name or peer URL.
				return nil, usageError(fmt.Errorf("--add: %s", ce.Reason))
			}
			return nil, restoreInputError(err)
		}
	} else if c.IsSet("client-urls") {
		return nil, usageError(errors.New("--client-urls: expected only with --add"))
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
	lg, err := newLogger(c.String("log-level"))
	if err != nil {
		return err
	}
	defer lg.Sync()
	in.conn.Logger = lg
	facts, _, err := migrate.Gather(c.Context, in.conn, in.conn.Client.Endpoints, nil)
	if err != nil {
		return err
	}
	plan, err := migrate.NewPlan(facts, in.req)
	if err != nil {
		return migrateInputError(err)
	}
	if c.String("write-out") == "json" {
		return migrate.WriteJSON(c.App.Writer, plan)
	}
	return migrate.WriteTable(c.App.Writer, plan)
}
