package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zapgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/grpclog"

	"go.etcd.io/etcd/server/v3/embed"
)

// statusInterval is how often a member that waits for its peers tells
// systemd (and the log) what it is waiting for.
const statusInterval = 2 * time.Second

// Run starts the member, tells systemd when it is ready to serve, and serves
// until ctx is cancelled (a graceful stop: a leader hands leadership over
// first) or the member fails. A member that fails to start leaves no data
// dir behind that it created.
func Run(ctx context.Context, cfg *Config) error {
	grpc.EnableTracing = false
	ec := cfg.Embed
	var stopping atomic.Bool
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(quietStop(ec.GetLogger(), &stopping))
	if err := ec.ZapLoggerBuilder(ec); err != nil {
		return err
	}
	ec.SetupGlobalLoggers()
	lg := ec.GetLogger()
	if ec.LogLevel != "debug" {
		// etcd sends grpc's warnings and errors to stderr as plain text; serve
		// keeps every line of its stderr JSON: through its logger, at warn and
		// above, as etcd does with grpc's info in debug mode.
		grpclog.SetLoggerV2(zapgrpc.NewLogger(lg.WithOptions(zap.IncreaseLevel(zapcore.WarnLevel))))
	}
	defer lg.Sync()
	logStart(lg, cfg)

	if host, err := ec.UpdateDefaultClusterFromName(cfg.defaultInitialCluster); host != "" {
		lg.Info("detected default host for advertise", zap.String("host", host))
	} else if err != nil {
		lg.Info("failed to detect default host", zap.Error(err))
	}
	if ec.Dir == "" {
		ec.Dir = fmt.Sprintf("%v.etcd", ec.Name)
		lg.Warn("'data-dir' was empty; using default", zap.String("data-dir", ec.Dir))
	}
	if err := checkDataDir(ec.Dir); err != nil {
		return &DataDirError{Dir: ec.Dir, Err: err}
	}

	sd := newNotifier(lg)
	sd.notify("STATUS=starting member " + ec.Name)
	undo := rememberDirs(ec.Dir, ec.WalDir)
	e, err := embed.StartEtcd(ec)
	if err != nil {
		undo()
		return fmt.Errorf("start member %s: %w", ec.Name, err)
	}
	stop := func() {
		stopping.Store(true)
		e.Close()
	}
	if ready, err := waitReady(ctx, e, sd); !ready {
		stop()
		if err != nil {
			undo()
		}
		return err
	}
	lg.Info("notifying init daemon")
	sd.notify("READY=1\nSTATUS=serving client requests")
	stopBackups := startBackups(ctx, e, cfg, lg)
	err = serve(ctx, e, sd)
	stopBackups()
	stop()
	return err
}

// logStart logs what etcd's main logs before it starts a member.
func logStart(lg *zap.Logger, cfg *Config) {
	lg.Info("Running: ", zap.Strings("args", os.Args))
	if cfg.ConfigFile != "" {
		lg.Info("loaded server configuration, other configuration command line flags and environment variables will be ignored if provided",
			zap.String("path", cfg.ConfigFile))
		if len(cfg.Overridden) > 0 {
			lg.Warn("ignoring settings given besides the configuration file, as etcd does; put them in the file",
				zap.String("path", cfg.ConfigFile), zap.Strings("ignored", cfg.Overridden))
		}
	}
	for _, w := range cfg.Warnings {
		lg.Warn(w)
	}
}

// waitReady waits until the member has joined its cluster and can serve.
// It reports false with a nil error when ctx ended the wait.
func waitReady(ctx context.Context, e *embed.Etcd, sd *notifier) (bool, error) {
	tick := time.NewTicker(statusInterval)
	defer tick.Stop()
	for {
		select {
		case <-e.Server.ReadyNotify():
			return true, nil
		case <-e.Server.StopNotify():
			return false, fmt.Errorf("member %s stopped before it was ready", e.Config().Name)
		case err := <-e.Err():
			return false, fmt.Errorf("member %s: %w", e.Config().Name, err)
		case <-ctx.Done():
			sd.notify("STOPPING=1")
			return false, nil
		case <-tick.C:
			n := len(e.Server.Cluster().Members())
			sd.notify(fmt.Sprintf("STATUS=waiting for quorum: %d of %d members needed", n/2+1, n))
		case <-sd.watchdog():
			sd.notify("WATCHDOG=1")
		}
	}
}

// serve runs the ready member until ctx is done or it stops by itself.
func serve(ctx context.Context, e *embed.Etcd, sd *notifier) error {
	for {
		select {
		case <-ctx.Done():
			sd.notify("STOPPING=1")
			return nil
		case err := <-e.Err():
			sd.notify("STOPPING=1")
			return fmt.Errorf("member %s: %w", e.Config().Name, err)
		case <-e.Server.StoppingNotify():
			// As etcd does: a member removed from its cluster stops and
			// exits 0. From the start of the stop, so that gRPC closes
			// before the backend: etcd 3.6 answers Maintenance.Status on a
			// closed backend with a panic.
			sd.notify("STOPPING=1")
			return nil
		case <-sd.watchdog():
			sd.notify("WATCHDOG=1")
		}
	}
}

// DataDirError is a data dir that etcd could not use; nothing was created.
type DataDirError struct {
	Dir string
	Err error
}

func (e *DataDirError) Error() string { return fmt.Sprintf("data dir %s: %v", e.Dir, e.Err) }
func (e *DataDirError) Unwrap() error { return e.Err }

// checkDataDir refuses a data dir that etcd could not use, before anything
// is created: not a directory, a v2 proxy dir, or not writable.
func checkDataDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return checkWritableAncestor(dir)
	case err != nil:
		return err
	case !fi.IsDir():
		return errors.New("not a directory")
	}
	if _, err := os.Stat(filepath.Join(dir, "proxy")); err == nil {
		return errors.New("holds a v2 proxy directory, which etcd 3.6 no longer supports")
	}
	return checkWritable(dir)
}

// checkWritableAncestor checks that the nearest existing ancestor of a
// missing dir is a directory that can be written.
func checkWritableAncestor(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", p)
		}
		if err := checkWritable(p); err != nil {
			return fmt.Errorf("cannot be created in %s: %w", p, errors.Unwrap(err))
		}
		return nil
	}
}

// checkWritable probes dir by creating and removing a file in it, which
// also catches read-only file systems and immutable dirs that root meets.
func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".etcdops-probe-*")
	if err != nil {
		return fmt.Errorf("not writable: %w", errors.Unwrap(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

// rememberDirs notes which of dirs do not exist yet (or are empty) and
// returns a function that removes what a failed start created in them.
func rememberDirs(dirs ...string) func() {
	var undo []func()
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			continue
		}
		created := ""
		for p := abs; ; p = filepath.Dir(p) {
			if _, err := os.Stat(p); err == nil || p == filepath.Dir(p) {
				break
			}
			created = p
		}
		switch entries, err := os.ReadDir(abs); {
		case created != "":
			undo = append(undo, func() { os.RemoveAll(created) })
		case err == nil && len(entries) == 0:
			undo = append(undo, func() { emptyDir(abs) })
		}
	}
	return func() {
		for _, f := range undo {
			f()
		}
	}
}

func emptyDir(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}
