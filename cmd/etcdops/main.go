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
	return &cli.App{
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
			versionCommand(),
		},
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
