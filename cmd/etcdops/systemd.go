package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/etcdops/etcdops/systemd"
)

func systemdCommand() *cli.Command {
	return &cli.Command{
		Name:        "systemd",
		Usage:       "write systemd units that run etcdops",
		Subcommands: []*cli.Command{systemdUnitCommand(), systemdBackupCommand()},
	}
}

func systemdUnitCommand() *cli.Command {
	return &cli.Command{
		Name:      "unit",
		Usage:     "print or install the systemd unit and environment file of an etcd member",
		UsageText: "etcdops systemd unit [--name NAME] [etcd member flags] [--install [--root DIR] [--force]]",
		Description: "Prints a unit that runs `etcdops serve` (Type=notify, sandboxed) and its environment\n" +
			"file of ETCD_* variables, each after a comment naming its path. With --install, writes them\n" +
			"atomically (unit 0644, environment file 0600) and prints the commands to run next; a file\n" +
			"that exists with another content is replaced only with --force.\n\n" +
			"Exit codes: 0 done, 1 writing failed or would replace a file, 2 bad flags.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "member `NAME`, also used in the default paths", DefaultText: "short host name"},
			&cli.StringFlag{Name: "data-dir", Usage: "etcd data `DIR`", DefaultText: "/var/lib/etcd/NAME"},
			&cli.StringFlag{Name: "wal-dir", Usage: "dedicated WAL `DIR`"},
			&cli.StringFlag{Name: "listen-client-urls", Usage: "comma-separated `URLS` to serve clients on"},
			&cli.StringFlag{Name: "advertise-client-urls", Usage: "comma-separated client `URLS` to advertise"},
			&cli.StringFlag{Name: "listen-peer-urls", Usage: "comma-separated `URLS` to serve peers on"},
			&cli.StringFlag{Name: "initial-advertise-peer-urls", Usage: "comma-separated peer `URLS` to advertise"},
			&cli.StringFlag{Name: "initial-cluster", Usage: "bootstrap members as `NAME=URL,...`"},
			&cli.StringFlag{Name: "initial-cluster-state", Usage: "`STATE` new or existing"},
			&cli.StringFlag{Name: "initial-cluster-token", Usage: "bootstrap cluster `TOKEN`"},
			&cli.StringFlag{Name: "cert-file", Usage: "client server TLS certificate `FILE`"},
			&cli.StringFlag{Name: "key-file", Usage: "client server TLS key `FILE`"},
			&cli.StringFlag{Name: "trusted-ca-file", Usage: "client CA `FILE`"},
			&cli.BoolFlag{Name: "client-cert-auth", Usage: "require client certificates"},
			&cli.StringFlag{Name: "peer-cert-file", Usage: "peer TLS certificate `FILE`"},
			&cli.StringFlag{Name: "peer-key-file", Usage: "peer TLS key `FILE`"},
			&cli.StringFlag{Name: "peer-trusted-ca-file", Usage: "peer CA `FILE`"},
			&cli.BoolFlag{Name: "peer-client-cert-auth", Usage: "require peer client certificates"},
			&cli.GenericFlag{Name: "env", Value: &envList{}, Usage: "other etcd setting as `ETCD_FLAG=VALUE` (repeatable)"},
			&cli.StringFlag{Name: "binary", Usage: "etcdops `PATH` on the member", DefaultText: systemd.DefaultBinary},
			&cli.StringFlag{Name: "user", Usage: "`USER` to run as", DefaultText: systemd.DefaultUser},
			&cli.StringFlag{Name: "group", Usage: "`GROUP` to run as", DefaultText: systemd.DefaultGroup},
			&cli.StringFlag{Name: "unit-name", Usage: "unit `NAME`", DefaultText: "etcdops-NAME.service"},
			&cli.StringFlag{Name: "env-file", Usage: "environment file `PATH`", DefaultText: "/etc/etcdops/NAME.env"},
			&cli.BoolFlag{Name: "install", Usage: "write the files instead of printing them"},
			&cli.StringFlag{Name: "root", Usage: "with --install, write below `DIR` (paths in the files stay as on the member)"},
			&cli.BoolFlag{Name: "force", Usage: "with --install, replace files that differ"},
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError(fmt.Errorf("systemd unit: %w", err))
		},
		Action: systemdUnit,
	}
}

func systemdUnit(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError(fmt.Errorf("systemd unit: unexpected argument %q", c.Args().First()))
	}
	install := c.Bool("install")
	for _, flag := range []string{"root", "force"} {
		if c.IsSet(flag) && !install {
			return usageError(fmt.Errorf("systemd unit: --%s: expected only with --install", flag))
		}
	}
	m := systemd.Member{
		Name:                     c.String("name"),
		DataDir:                  c.String("data-dir"),
		WALDir:                   c.String("wal-dir"),
		ListenClientURLs:         c.String("listen-client-urls"),
		AdvertiseClientURLs:      c.String("advertise-client-urls"),
		ListenPeerURLs:           c.String("listen-peer-urls"),
		InitialAdvertisePeerURLs: c.String("initial-advertise-peer-urls"),
		InitialCluster:           c.String("initial-cluster"),
		InitialClusterState:      c.String("initial-cluster-state"),
		InitialClusterToken:      c.String("initial-cluster-token"),
		CertFile:                 c.String("cert-file"),
		KeyFile:                  c.String("key-file"),
		TrustedCAFile:            c.String("trusted-ca-file"),
		ClientCertAuth:           c.Bool("client-cert-auth"),
		PeerCertFile:             c.String("peer-cert-file"),
		PeerKeyFile:              c.String("peer-key-file"),
		PeerTrustedCAFile:        c.String("peer-trusted-ca-file"),
		PeerClientCertAuth:       c.Bool("peer-client-cert-auth"),
		Env:                      *c.Generic("env").(*envList),
		Binary:                   c.String("binary"),
		User:                     c.String("user"),
		Group:                    c.String("group"),
		UnitName:                 c.String("unit-name"),
		EnvFile:                  c.String("env-file"),
	}
	if err := m.SetDefaults(); err != nil {
		return fmt.Errorf("systemd unit: %w", err)
	}
	if err := m.Validate(); err != nil {
		return usageError(fmt.Errorf("systemd unit: %w", systemdFlagError(err)))
	}
	files, err := m.Files()
	if err != nil {
		return fmt.Errorf("systemd unit %s: %w", m.UnitName, err)
	}
	w := c.App.Writer
	if !install {
		return systemd.Print(w, files)
	}
	root := c.String("root")
	if err := systemd.Install(root, files, c.Bool("force")); err != nil {
		return fmt.Errorf("systemd unit %s: %w", m.UnitName, forceHint(err))
	}
	for _, f := range files {
		fmt.Fprintf(w, "wrote %s\n", filepath.Join(root, f.Path))
	}
	fmt.Fprintf(w, "next, on the member:\n  %s\n", strings.Join(m.NextSteps(), "\n  "))
	return nil
}

// envList collects repeated --env flags. Unlike cli.StringSliceFlag it does
// not split values at commas, which ETCD_* values may contain.
type envList []string

func (l *envList) Set(v string) error { *l = append(*l, v); return nil }
func (l *envList) String() string     { return "" }

// forceHint adds to systemd.ErrDiffers how to replace the file.
func forceHint(err error) error {
	if errors.Is(err, systemd.ErrDiffers) {
		return fmt.Errorf("%w (use --force to replace it)", err)
	}
	return err
}

// systemdFlagError words a *systemd.ValidationError with the flag of its
// setting (etcd's flags and ours share the names).
func systemdFlagError(err error) error {
	var ve *systemd.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	return fmt.Errorf("--%s %q: expected %s", ve.Setting, ve.Value, ve.Expected)
}
