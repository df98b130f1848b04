package main

import (
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/urfave/cli/v2"

	"go.etcd.io/etcd/api/v3/version"

	"github.com/etcdops/etcdops/server"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "run an etcd member (a drop-in for the etcd binary)",
		UsageText: "etcdops serve [etcd flags]",
		Description: "Takes exactly etcd's flags, ETCD_* environment variables and etcd's YAML --config-file,\n" +
			"with etcd's precedence: a config file replaces flags and environment (a warning names what\n" +
			"it ignores). Unlike etcd, unknown config file keys are an error. With no arguments it runs a\n" +
			"single-member cluster on localhost:2379/2380 with data in ./default.etcd.\n\n" +
			"Exit codes: 0 stopped cleanly (SIGTERM/SIGINT), 1 the member failed, 2 bad flags or config.",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			cfg, err := server.Parse(c.Args().Slice())
			switch {
			case errors.Is(err, server.ErrHelp):
				fmt.Fprintf(c.App.Writer, "usage: etcdops serve [etcd flags]\n\n")
				server.PrintDefaults(c.App.Writer)
				return nil
			case err != nil:
				return usageError(fmt.Errorf("serve: %w", err))
			case cfg.PrintVersion:
				printEtcdVersion(c.App.Writer)
				return nil
			}
			cfg.EtcdopsVersion = etcdopsVersion()
			err = server.Run(c.Context, cfg)
			var de *server.DataDirError
			if errors.As(err, &de) {
				return fmt.Errorf("serve: --data-dir %s: %w", de.Dir, de.Err)
			}
			if err != nil {
				return fmt.Errorf("serve: %w", err)
			}
			return nil
		},
	}
}

// printEtcdVersion prints exactly what `etcd --version` prints.
func printEtcdVersion(w io.Writer) {
	fmt.Fprintf(w, "etcd Version: %s\n", version.Version)
	fmt.Fprintf(w, "Git SHA: %s\n", version.GitSHA)
	fmt.Fprintf(w, "Go Version: %s\n", runtime.Version())
	fmt.Fprintf(w, "Go OS/Arch: %s/%s\n", runtime.GOOS, runtime.GOARCH)
}
