package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/etcdops/etcdops/schedule"
	"github.com/etcdops/etcdops/systemd"
)

func systemdBackupCommand() *cli.Command {
	return &cli.Command{
		Name:  "backup",
		Usage: "print or install systemd units that take etcd backups on a schedule",
		UsageText: "etcdops systemd backup --name NAME [--install …] -- SCHEDULE FLAGS    (a service running etcdops schedule)\n" +
			"   etcdops systemd backup --name NAME --timer [--on-calendar CAL] [--randomized-delay D] [--install …] -- BACKUP SAVE FLAGS",
		Description: "Without --timer: a sandboxed service running `etcdops schedule` with the flags after --.\n" +
			"With --timer: a oneshot service running `etcdops backup save` with the flags after --, and a timer\n" +
			"(Persistent=true: a run missed while the machine was off happens at boot; RandomizedDelaySec\n" +
			"spreads a fleet's runs). Credentials go in the optional environment file (ETCDCTL_*, AWS_*).\n\n" +
			"Exit codes: 0 done, 1 writing failed or would replace a file, 2 bad flags.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Required: true, Usage: "`NAME` of the units: etcdops-backup-NAME.service (and .timer)"},
			&cli.BoolFlag{Name: "timer", Usage: "a timer and a oneshot backup save instead of the schedule daemon"},
			&cli.StringFlag{Name: "on-calendar", Usage: "timer `CALENDAR` in systemd's syntax", DefaultText: systemd.DefaultOnCalendar},
			&cli.StringFlag{Name: "randomized-delay", Usage: "timer's random delay `SPAN`", DefaultText: systemd.DefaultRandomizedDelay},
			&cli.StringFlag{Name: "binary", Usage: "etcdops `PATH`", DefaultText: systemd.DefaultBinary},
			&cli.StringFlag{Name: "user", Usage: "`USER` to run as", DefaultText: systemd.DefaultUser},
			&cli.StringFlag{Name: "group", Usage: "`GROUP` to run as", DefaultText: systemd.DefaultGroup},
			&cli.StringFlag{Name: "env-file", Usage: "environment file `PATH`", DefaultText: "/etc/etcdops/backup-NAME.env"},
			&cli.BoolFlag{Name: "install", Usage: "write the files instead of printing them"},
			&cli.StringFlag{Name: "root", Usage: "with --install, write below `DIR`"},
			&cli.BoolFlag{Name: "force", Usage: "with --install, replace files that differ"},
		},
		Action: func(c *cli.Context) error {
			for _, flag := range []string{"root", "force"} {
				if c.IsSet(flag) && !c.Bool("install") {
					return usageError(fmt.Errorf("systemd backup: --%s: expected only with --install", flag))
				}
			}
			b := systemd.Backup{Name: c.String("name"), Args: c.Args().Slice(), Timer: c.Bool("timer"),
				OnCalendar: c.String("on-calendar"), RandomizedDelay: c.String("randomized-delay"),
				Binary: c.String("binary"), User: c.String("user"), Group: c.String("group"), EnvFile: c.String("env-file")}
			b.SetDefaults()
			files, err := b.Files()
			if err == nil && !b.Timer {
				err = checkSpecs(b.Args)
			}
			if err != nil {
				return usageError(fmt.Errorf("systemd backup: %w", err))
			}
			w := c.App.Writer
			if !c.Bool("install") {
				return systemd.Print(w, files)
			}
			root := c.String("root")
			if err := systemd.Install(root, files, c.Bool("force")); err != nil {
				return fmt.Errorf("systemd backup %s: %w", b.Name, forceHint(err))
			}
			unit := filepath.Base(files[len(files)-1].Path)
			for _, f := range files {
				fmt.Fprintf(w, "wrote %s\n", filepath.Join(root, f.Path))
			}
			fmt.Fprintf(w, "next:\n  systemctl daemon-reload\n  systemctl enable --now %s\n", unit)
			return nil
		},
	}
}

// checkSpecs parses the schedules among the flags of etcdops schedule as
// it will, so that a unit whose service could never run is not written.
func checkSpecs(args []string) error {
	for i, a := range args {
		for _, flag := range []string{"--cron", "--verify-cron", "--defrag-cron"} {
			v, ok := strings.CutPrefix(a, flag+"=")
			if !ok && a == flag && i+1 < len(args) {
				v, ok = args[i+1], true
			}
			if !ok {
				continue
			}
			if _, err := schedule.ParseSpec(v); err != nil {
				return fmt.Errorf("%s: %w", flag, err)
			}
		}
	}
	return nil
}
