package main

import (
	"fmt"
	"io"
	"os"

	"github.com/cheggaaa/pb/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/etcdops/etcdops/backup"
)

// onTerminal reports whether stderr is a terminal: a person is watching.
func onTerminal() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

// newLogger returns the logger of the ops commands: console lines on a
// terminal, JSON lines (like etcd's) otherwise, both on stderr.
func newLogger(level string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.Set(level); err != nil {
		return nil, usageError(fmt.Errorf("--log-level: invalid value %q, expected debug, info, warn or error", level))
	}
	cfg := zap.NewProductionConfig()
	if onTerminal() {
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableCaller = true
	}
	// An operator's log wants the error's message, not the goroutine's stack.
	cfg.DisableStacktrace = true
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder // as etcd's logs
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil
	cfg.OutputPaths, cfg.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
	return cfg.Build()
}

// progressBar shows transfers on a terminal; it implements backup.Progress.
type progressBar struct{ bar *pb.ProgressBar }

// newProgress returns a progress bar on a terminal unless quiet, else nil.
func newProgress(quiet bool) backup.Progress {
	if quiet || !onTerminal() {
		return nil
	}
	return &progressBar{}
}

func (p *progressBar) Wrap(r io.Reader, total int64) io.Reader {
	p.bar = pb.Full.Start64(total).SetWriter(os.Stderr).Set(pb.Bytes, true)
	return p.bar.NewProxyReader(r)
}

func (p *progressBar) Done() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
