package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"go.etcd.io/etcd/api/v3/version"
)

// Version is the etcdops release, set at build time with
// -ldflags "-X main.Version=v0.1.0"; otherwise taken from the module build info.
var Version = ""

func etcdopsVersion() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the etcdops version and the version of the embedded etcd",
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "etcdops Version: %s\n", etcdopsVersion())
			fmt.Fprintf(c.App.Writer, "etcd Version: %s\n", version.Version)
			fmt.Fprintf(c.App.Writer, "etcd API Version: %s\n", version.APIVersion)
			fmt.Fprintf(c.App.Writer, "Go Version: %s\n", runtime.Version())
			fmt.Fprintf(c.App.Writer, "Go OS/Arch: %s/%s\n", runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
