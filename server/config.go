// Package server runs one etcd member on embedded etcd, configured exactly as
// the stock etcd binary is: etcd's flags, ETCD_* environment, or a YAML config file.
package server

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"go.etcd.io/etcd/client/pkg/v3/logutil"
	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/pkg/v3/flags"
	cconfig "go.etcd.io/etcd/server/v3/config"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/rafthttp"
	"go.etcd.io/etcd/server/v3/storage/wal"

	"github.com/etcdops/etcdops/schedule"
)

// ErrHelp is returned by Parse when the arguments ask for help.
var ErrHelp = flag.ErrHelp

// ignoredFlags are accepted and ignored, as etcd does, for old scripts.
var ignoredFlags = []string{
	"cluster-active-size", "cluster-remove-delay", "cluster-sync-interval", "config", "force",
	"max-result-buffer", "max-retry-attempts", "peer-heartbeat-interval", "peer-election-timeout",
	"retry-interval", "snapshot", "v", "vv",
}

// Config is a member's parsed configuration.
type Config struct {
	// Embed is the embedded etcd configuration, validated.
	Embed *embed.Config
	// ConfigFile is the YAML file the configuration came from, if any.
	ConfigFile string
	// Overridden lists the flags and ETCD_* variables that were given but
	// ignored because a config file was used (etcd's precedence).
	Overridden []string
	// Warnings are deprecation warnings etcd prints for the given settings.
	Warnings []string
	// PrintVersion is set by --version; nothing else is parsed then.
	PrintVersion bool
	// Args are the arguments the configuration was parsed from.
	Args []string

	// Backup is the member's own backup schedule (--backup-*), nil for none.
	Backup *schedule.JobConfig
	// BackupUser and BackupPassword are the etcd user the scheduled
	// backups log in as (--backup-user, ETCDOPS_BACKUP_PASSWORD), when the
	// cluster has auth enabled. The password is never logged.
	BackupUser, BackupPassword string
	// BackupStallTimeout fails a scheduled backup whose bucket moves no
	// byte for so long (--backup-stall-timeout); 0 is backup's default.
	BackupStallTimeout time.Duration
	// DefragCron is the spec of the cluster's scheduled rolling defrag
	// (--defrag-cron), "" for none.
	DefragCron string
	// EtcdopsVersion is recorded in the manifests of scheduled backups.
	EtcdopsVersion string

	defaultInitialCluster string
}

// flagSet is etcd's server flag set bound to an embed.Config.
type flagSet struct {
	fs           *flag.FlagSet
	ec           *embed.Config
	configFile   string
	printVersion bool
	clusterState *flags.SelectiveStringValue
	// defaultInitialCluster is --initial-cluster's default, which a member
	// named by --name alone replaces with its own name.
	defaultInitialCluster string
	fallback              *flags.SelectiveStringValue
	v2deprecate           *flags.SelectiveStringsValue
	backup                map[string]*string
}

func newFlagSet() *flagSet {
	f := &flagSet{
		fs:           flag.NewFlagSet("etcdops serve", flag.ContinueOnError),
		ec:           embed.NewConfig(),
		clusterState: flags.NewSelectiveStringValue(embed.ClusterStateFlagNew, embed.ClusterStateFlagExisting),
		fallback:     flags.NewSelectiveStringValue("exit", "proxy"),
		v2deprecate: flags.NewSelectiveStringsValue(
			string(cconfig.V2Depr1WriteOnly), string(cconfig.V2Depr1WriteOnlySkipCheck),
			string(cconfig.V2Depr1WriteOnlyDrop), string(cconfig.V2Depr2Gone)),
	}
	fs := f.fs
	fs.SetOutput(io.Discard)
	f.ec.AddFlags(fs)
	f.defaultInitialCluster = f.ec.InitialCluster
	fs.StringVar(&f.configFile, "config-file", "", "Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.")
	fs.Var(f.fallback, "discovery-fallback", fmt.Sprintf("Valid values include %q", f.fallback.Valids()))
	fs.Var(f.clusterState, "initial-cluster-state", "Initial cluster state ('new' when bootstrapping a new cluster or 'existing' when adding new members to an existing cluster). After successful initialization (bootstrapping or adding), flag is ignored on restarts.")
	fs.Var(f.v2deprecate, "v2-deprecation", fmt.Sprintf("v2store deprecation stage: %q. Deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input.", f.v2deprecate.Valids()))
	fs.BoolVar(&f.printVersion, "version", false, "Print the version and exit.")
	for _, name := range ignoredFlags {
		fs.Var(&flags.IgnoredFlag{Name: name}, name, "")
	}
	f.addBackupFlags()
	fs.String(defragCronKey, "", defragCronUsage)
	return f
}

// PrintDefaults writes the usage of every flag serve accepts to w.
func PrintDefaults(w io.Writer) {
	f := newFlagSet()
	f.fs.SetOutput(w)
	f.fs.PrintDefaults()
}

// Parse reads a member configuration the way etcd does: from args and ETCD_*
// environment variables, or, when --config-file (or ETCD_CONFIG_FILE) is
// given, from that file alone. It returns ErrHelp for -h/--help.
func Parse(args []string) (*Config, error) {
	f := newFlagSet()
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, ErrHelp
		}
		return nil, explainFlagError(f.fs, err)
	}
	if f.fs.NArg() != 0 {
		return nil, fmt.Errorf("%q is not a valid flag", f.fs.Arg(0))
	}
	cfg := &Config{PrintVersion: f.printVersion, Args: args, defaultInitialCluster: f.defaultInitialCluster}
	if f.printVersion {
		return cfg, nil
	}
	if f.configFile == "" {
		f.configFile = os.Getenv(flags.FlagToEnv("ETCD", "config-file"))
	}
	// The backup settings first: etcd's Validate logs warnings about a
	// config it accepts, which would precede their one-line error.
	var err error
	if cfg.Backup, err = f.backupJob(f.configFile, cfg); err != nil {
		return nil, err
	}
	if cfg.DefragCron, err = f.defragCronSetting(f.configFile); err != nil {
		return nil, err
	}
	if f.configFile != "" {
		cfg.ConfigFile = f.configFile
		cfg.Overridden = f.overridden()
		cfg.Embed, cfg.Warnings, err = loadConfigFile(f.configFile)
		if err == nil {
			err = checkLocalMember(cfg.Embed, f.defaultInitialCluster)
		}
	} else {
		cfg.Embed, err = f.fromCmdLine()
	}
	if err != nil {
		return nil, err
	}
	deprecated, err := applyDeprecated(cfg.Embed)
	if err != nil {
		return nil, err
	}
	if err := applyDefaultGates(cfg.Embed); err != nil {
		return nil, err
	}
	cfg.Warnings = append(cfg.Warnings, deprecated...)
	return cfg, nil
}

// overridden lists what a config file makes etcd ignore: the flags given
// besides --config-file, and the ETCD_* variables that name a flag.
func (f *flagSet) overridden() []string {
	var out []string
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name != "config-file" && !isServeFlag(fl.Name) {
			out = append(out, "--"+fl.Name)
		}
	})
	f.fs.VisitAll(func(fl *flag.Flag) {
		key := flags.FlagToEnv("ETCD", fl.Name)
		if _, ok := os.LookupEnv(key); ok && fl.Name != "config-file" && !isServeFlag(fl.Name) {
			out = append(out, key)
		}
	})
	sort.Strings(out)
	return out
}

// fromCmdLine completes the configuration from flags and ETCD_* variables,
// as etcd's configFromCmdLine does.
func (f *flagSet) fromCmdLine() (*embed.Config, error) {
	lg, err := logutil.CreateDefaultZapLogger(zap.InfoLevel)
	if err != nil {
		return nil, err
	}
	if v := os.Getenv("ETCD_VERSION"); v != "" {
		os.Unsetenv("ETCD_VERSION")
		lg.Warn("cannot set special environment variable", zap.String("key", "ETCD_VERSION"), zap.String("value", v))
	}
	if err := f.setFromEnv(lg); err != nil {
		return nil, err
	}
	if rafthttp.ConnReadTimeout < rafthttp.DefaultConnReadTimeout {
		rafthttp.ConnReadTimeout = rafthttp.DefaultConnReadTimeout
		lg.Info(fmt.Sprintf("raft-read-timeout increased to minimum value: %v", rafthttp.DefaultConnReadTimeout))
	}
	if rafthttp.ConnWriteTimeout < rafthttp.DefaultConnWriteTimeout {
		rafthttp.ConnWriteTimeout = rafthttp.DefaultConnWriteTimeout
		lg.Info(fmt.Sprintf("raft-write-timeout increased to minimum value: %v", rafthttp.DefaultConnWriteTimeout))
	}

	ec, fs := f.ec, f.fs
	ec.ListenPeerUrls = flags.UniqueURLsFromFlag(fs, "listen-peer-urls")
	ec.AdvertisePeerUrls = flags.UniqueURLsFromFlag(fs, "initial-advertise-peer-urls")
	ec.ListenClientUrls = flags.UniqueURLsFromFlag(fs, "listen-client-urls")
	ec.ListenClientHttpUrls = flags.UniqueURLsFromFlag(fs, "listen-client-http-urls")
	ec.AdvertiseClientUrls = flags.UniqueURLsFromFlag(fs, "advertise-client-urls")
	ec.ListenMetricsUrls = flags.UniqueURLsFromFlag(fs, "listen-metrics-urls")
	ec.DiscoveryCfg.Endpoints = flags.UniqueStringsFromFlag(fs, "discovery-endpoints")
	ec.CORS = flags.UniqueURLsMapFromFlag(fs, "cors")
	ec.HostWhitelist = flags.UniqueStringsMapFromFlag(fs, "host-whitelist")
	ec.ClientTLSInfo.AllowedHostnames = flags.StringsFromFlag(fs, "client-cert-allowed-hostname")
	ec.PeerTLSInfo.AllowedCNs = flags.StringsFromFlag(fs, "peer-cert-allowed-cn")
	ec.PeerTLSInfo.AllowedHostnames = flags.StringsFromFlag(fs, "peer-cert-allowed-hostname")
	ec.CipherSuites = flags.StringsFromFlag(fs, "cipher-suites")
	ec.MaxConcurrentStreams = flags.Uint32FromFlag(fs, "max-concurrent-streams")
	ec.LogOutputs = flags.UniqueStringsFromFlag(fs, "log-outputs")
	ec.ClusterState = f.clusterState.String()
	ec.V2Deprecation = cconfig.V2DeprecationEnum(f.v2deprecate.String())

	// Listening on client URLs without advertising them disables the default
	// advertise URL, so that etcd refuses to start rather than advertise localhost.
	if flags.IsSet(fs, "listen-client-urls") && !flags.IsSet(fs, "advertise-client-urls") {
		ec.AdvertiseClientUrls = nil
	}
	if (ec.Durl != "" || ec.DNSCluster != "" || ec.DNSClusterServiceName != "" || len(ec.DiscoveryCfg.Endpoints) > 0) &&
		!flags.IsSet(fs, "initial-cluster") {
		ec.InitialCluster = ""
	}
	fs.Visit(func(fl *flag.Flag) { ec.FlagsExplicitlySet[fl.Name] = true })

	var boolErr error
	getBool := func(name string) *bool {
		v, err := flags.GetBoolFlagVal(fs, name)
		if err != nil {
			boolErr = fmt.Errorf("--%s: expected true or false: %w", name, err)
		}
		return v
	}
	gates := fs.Lookup(embed.ServerFeatureGateFlagName).Value.String()
	if err := embed.SetFeatureGatesFromExperimentalFlags(ec.ServerFeatureGate, getBool, gates); err != nil {
		return nil, err
	}
	if boolErr != nil {
		return nil, boolErr
	}
	if f.fallback.String() == "proxy" {
		return nil, errors.New(`--discovery-fallback: v2 proxy is deprecated, expected "exit"`)
	}
	if err := checkLogLevel(ec.LogLevel); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	// Before Validate, which logs warnings about a config it accepts.
	if err := checkLocalMember(ec, f.defaultInitialCluster); err != nil {
		return nil, err
	}
	if err := ec.Validate(); err != nil {
		return nil, err
	}
	return ec, nil
}

// checkLocalMember refuses, as etcd would once it started, an initial
// cluster that does not list the member's name, when the member bootstraps
// from it: no discovery, no WAL in the data dir yet, and an initial cluster
// given (etcd derives the default one from the name).
func checkLocalMember(ec *embed.Config, defaultInitialCluster string) error {
	if ec.InitialCluster == "" || ec.InitialCluster == defaultInitialCluster {
		return nil
	}
	dir := ec.Dir
	if dir == "" {
		dir = ec.Name + ".etcd"
	}
	walDir := ec.WalDir
	if walDir == "" {
		walDir = filepath.Join(dir, "member", "wal")
	}
	if wal.Exist(walDir) {
		return nil // etcd ignores the initial cluster then
	}
	urls, err := types.NewURLsMap(ec.InitialCluster)
	if err != nil {
		return nil // ec.Validate reports it
	}
	if _, ok := urls[ec.Name]; !ok {
		var names []string
		for n := range urls {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("--name %q: not in --initial-cluster (%s): expected this member's name there", ec.Name, strings.Join(names, ", "))
	}
	return nil
}

// checkLogLevel refuses a level that etcd's logger setup would panic on.
func checkLogLevel(level string) error {
	var l zapcore.Level
	if err := l.Set(level); err != nil {
		return fmt.Errorf("invalid value %q, expected debug, info, warn, error, panic or fatal", level)
	}
	return nil
}

// setFromEnv applies ETCD_* variables to the flags not given on the command
// line, as etcd does, but returns an error where etcd exits: a variable that
// names a flag also given on the command line. It logs what etcd logs, with
// the values of secret settings redacted.
func (f *flagSet) setFromEnv(lg *zap.Logger) error {
	var conflict error
	f.fs.Visit(func(fl *flag.Flag) {
		key := flags.FlagToEnv("ETCD", fl.Name)
		if _, ok := os.LookupEnv(key); ok && conflict == nil {
			conflict = fmt.Errorf("--%s is also set by %s in the environment; etcd refuses both, unset one", fl.Name, key)
		}
	})
	if conflict != nil {
		return conflict
	}
	given := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	if err := flags.SetFlagsFromEnv(nil, "ETCD", f.fs); err != nil {
		return err
	}
	known := map[string]bool{}
	f.fs.VisitAll(func(fl *flag.Flag) {
		key := flags.FlagToEnv("ETCD", fl.Name)
		known[key] = true
		if val := os.Getenv(key); val != "" && !given[fl.Name] {
			lg.Info("recognized and used environment variable",
				zap.String("variable-name", key), zap.String("variable-value", redact(key, val)))
		}
	})
	for _, kv := range os.Environ() {
		key, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(key, "ETCD_") && !known[key] {
			lg.Warn("unrecognized environment variable", zap.String("environment-variable", key))
		}
	}
	return nil
}

// redact hides the value of settings that hold secrets.
func redact(key, val string) string {
	if strings.Contains(key, "PASSWORD") || strings.Contains(key, "TOKEN") && strings.Contains(key, "DISCOVERY") {
		return "[redacted]"
	}
	return val
}

// explainFlagError rewrites the flag package's parse errors into one line
// that names the flag and, for enumerations, what was expected.
func explainFlagError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown flag --%s (see 'etcdops serve --help')", strings.TrimLeft(name, "-"))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("--%s: expected a value", strings.TrimLeft(name, "-"))
	}
	value, rest, ok := strings.Cut(msg, " for flag -")
	if !ok {
		if value, rest, ok = strings.Cut(msg, " for -"); !ok {
			return err
		}
	}
	name, detail, _ := strings.Cut(rest, ": ")
	name = strings.TrimLeft(name, "-")
	value = strings.TrimPrefix(strings.TrimPrefix(value, "invalid boolean value "), "invalid value ")
	fl := fs.Lookup(name)
	if fl == nil {
		return err
	}
	switch v := fl.Value.(type) {
	case *flags.SelectiveStringValue:
		return fmt.Errorf("--%s: invalid value %s, expected one of %s", name, value, strings.Join(v.Valids(), ", "))
	case *flags.SelectiveStringsValue:
		return fmt.Errorf("--%s: invalid value %s, expected a comma-separated list of %s", name, value, strings.Join(v.Valids(), ", "))
	}
	if bf, ok := fl.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
		return fmt.Errorf("--%s: invalid value %s, expected true or false", name, value)
	}
	return fmt.Errorf("--%s: invalid value %s: %s", name, value, detail)
}
