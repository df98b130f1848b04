// Command etcdops runs an etcd member and the operations that keep an etcd cluster alive.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
)

// Exit codes. Scripts depend on them; every command documents the ones it uses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// exitError carries the exit code a command wants main to use.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks err as caused by bad input (exit code 2).
func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

func newApp() *cli.App {
	app := &cli.App{
		Name:                 "etcdops",
		Usage:                "run an etcd member and the operations that keep an etcd cluster alive",
		HideVersion:          true,
		EnableBashCompletion: false,
		Commands: []*cli.Command{
			serveCommand(),
			backupCommand(),
			scheduleCommand(),
			restoreCommand(),
			healthCommand(),
			systemdCommand(),
			migrateCommand(),
			defragCommand(),
			versionCommand(),
		},
		// Errors come back to run, which alone decides exit codes.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	markUsageErrors(app.Commands, map[*cli.StringFlag]bool{})
	return app
}

// markUsageErrors makes urfave/cli's own input errors usage errors in every command that does not
// map them itself: a flag that does not parse, and a required flag that is missing (checked in
// Before instead of by urfave/cli, whose error carries no type to tell it by).
// Flags shared by several commands are looked up in required once their own mark is cleared.
func markUsageErrors(cmds []*cli.Command, required map[*cli.StringFlag]bool) {
	for _, cmd := range cmds {
		markUsageErrors(cmd.Subcommands, required)
		if cmd.OnUsageError == nil {
			cmd.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usageError(err) }
		}
		var names []string
		for _, f := range cmd.Flags {
			if sf, ok := f.(*cli.StringFlag); ok && (sf.Required || required[sf]) {
				sf.Required, required[sf] = false, true
				names = append(names, sf.Name)
			}
		}
		if len(names) == 0 {
			continue
		}
		before := cmd.Before
		cmd.Before = func(c *cli.Context) error {
			for _, name := range names {
				if !c.IsSet(name) {
					return usageError(fmt.Errorf("--%s: required", name))
				}
			}
			if before != nil {
				return before(c)
			}
			return nil
		}
	}
}

func main() {
	os.Exit(run(os.Args))
}

// run executes the command line and maps its outcome to an exit code. It is
// the only place that decides exit codes.
func run(args []string) int {
	ctx, stop := signalContext()
	defer stop()
	app := newApp()
	err := app.RunContext(ctx, flagsFirst(app, args))
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "etcdops: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// urfave/cli's own exit errors say that no such command or help topic exists.
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return exitUsage
	}
	return exitFailure
}

// signalContext returns a context cancelled by the first SIGINT or SIGTERM.
// A second signal forces the process to exit at once. Copies of the first
// signal that arrive together with it (as `timeout` and process-group kills
// deliver them) count as one.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		var first os.Signal
		select {
		case first = <-sigc:
			cancel()
		case <-done:
			return
		}
		since := time.Now()
		for {
			select {
			case sig := <-sigc:
				if sig == first && time.Since(since) < duplicateSignalWindow {
					continue
				}
				fmt.Fprintf(os.Stderr, "etcdops: second signal (%v), exiting without graceful shutdown\n", sig)
				os.Exit(128 + int(sig.(syscall.Signal)))
			case <-done:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(sigc)
		close(done)
		cancel()
	}
}

// duplicateSignalWindow is how soon after the first signal the same signal
// is taken as a copy of it rather than a request to force the exit.
const duplicateSignalWindow = 300 * time.Millisecond
