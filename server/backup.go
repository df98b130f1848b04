package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/yaml"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdclient"
	"github.com/etcdops/etcdops/schedule"
)

// backupKeys are serve's settings beyond etcd's: the member's own backup
// schedule. Each is a flag --backup-KEY, a variable ETCDOPS_BACKUP_KEY and
// a config file key backup-KEY (stock etcd ignores config keys it does not
// know, so the file still starts stock etcd). A flag beats a variable,
// which beats the file, which applies even though the file replaces etcd's
// own flags.
var backupKeys = map[string]string{
	"cron":             "take a backup at `SPEC` (5 cron fields, @hourly, \"@every 30m\"; UTC unless CRON_TZ=Zone): every member may set it, one member takes each slot",
	"to":               "bucket `URL` for the member's scheduled backups",
	"tag":              "name the scheduled backups `TAG`_<slot time> (default: cluster-<cluster ID>)",
	"compress":         "compress the scheduled backups with zstd",
	"pitr":             "also stream every change to the bucket between backups (point-in-time recovery); one member streams at a time",
	"pitr-keep-within": "with --backup-pitr, keep every point of the log within `DURATION` before the newest backup recoverable, whatever --backup-keep-* drop",
	"keep-last":        "after each scheduled backup keep the `N` newest of the tag",
	"keep-hourly":      "… and the newest of each of the last `N` hours",
	"keep-daily":       "… and the newest of each of the last `N` days",
	"keep-weekly":      "… and the newest of each of the last `N` weeks",
	"keep-monthly":     "… and the newest of each of the last `N` months",
	"keep-within":      "… and every one within `DURATION` of the newest",
	"stall-timeout":    "fail a scheduled backup when the bucket moves no byte for `DURATION` (default 1m)",
	"user":             "take the scheduled backups as etcd user `NAME` when auth is on (snapshots need the root role); its password only in ETCDOPS_BACKUP_PASSWORD or the config file key backup-password",
}

// backupPassword is the one backup key with no flag, so that the password
// shows neither in the process list nor in the logged command line.
const backupPassword = "password"

// backupSettingKeys are the keys read from the environment and the config
// file: backupKeys and the password.
func backupSettingKeys() []string {
	keys := []string{backupPassword}
	for k := range backupKeys {
		keys = append(keys, k)
	}
	return keys
}

// boolString is a boolean flag kept as its text.
type boolString struct{ s *string }

func (b boolString) String() string {
	if b.s == nil {
		return ""
	}
	return *b.s
}
func (b boolString) Set(v string) error { *b.s = v; return nil }
func (b boolString) IsBoolFlag() bool   { return true }

// addBackupFlags registers the --backup-* flags.
func (f *flagSet) addBackupFlags() {
	f.backup = map[string]*string{}
	for k, usage := range backupKeys {
		v := new(string)
		f.backup[k] = v
		if k == "compress" || k == "pitr" {
			f.fs.Var(boolString{v}, "backup-"+k, usage)
			continue
		}
		f.fs.StringVar(v, "backup-"+k, "", usage)
	}
}

func isBackupFlag(name string) bool { return strings.HasPrefix(name, "backup-") }

// backupEnv is the variable of a backup key.
func backupEnv(key string) string {
	return "ETCDOPS_BACKUP_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// backupJob gathers the backup settings from the config file (if any),
// the environment and the flags, and validates them. It returns nil when
// none is set, and sets the credentials on cfg.
func (f *flagSet) backupJob(configFile string, cfg *Config) (*schedule.JobConfig, error) {
	vals := map[string]string{}
	source := map[string]string{}
	if configFile != "" {
		b, err := os.ReadFile(configFile)
		if err != nil {
			return nil, fmt.Errorf("--config-file: %w", err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("config file %s: %w", configFile, oneLine(err))
		}
		for _, k := range backupSettingKeys() {
			if v, ok := lookupFold(m, "backup-"+k); ok && v != nil {
				vals[k], source[k] = fmt.Sprint(v), "config file key backup-"+k
			}
		}
	}
	for _, k := range backupSettingKeys() {
		if v, ok := os.LookupEnv(backupEnv(k)); ok {
			vals[k], source[k] = v, backupEnv(k)
		}
	}
	f.fs.Visit(func(fl *flag.Flag) {
		if k, ok := strings.CutPrefix(fl.Name, "backup-"); ok {
			vals[k], source[k] = *f.backup[k], "--"+fl.Name
		}
	})
	if len(vals) == 0 {
		return nil, nil
	}
	name := func(k string) string {
		if s, ok := source[k]; ok {
			return s
		}
		return "--backup-" + k
	}
	jc := &schedule.JobConfig{Name: "backup", Cron: vals["cron"], To: vals["to"], Tag: vals["tag"], KeepWithin: vals["keep-within"],
		PITRKeepWithin: vals["pitr-keep-within"]}
	if jc.Cron == "" {
		return nil, fmt.Errorf("--backup-cron: required with the other backup settings (%s)", name(firstKey(vals)))
	}
	cfg.BackupUser, cfg.BackupPassword = vals["user"], vals[backupPassword]
	if strings.Contains(cfg.BackupUser, ":") {
		// Not echoed: it may hold a password.
		return nil, fmt.Errorf("%s: expected a user name without ':'; give the password in %s or the config file key backup-%s",
			name("user"), backupEnv(backupPassword), backupPassword)
	}
	if cfg.BackupPassword != "" && cfg.BackupUser == "" {
		return nil, fmt.Errorf("%s: given without a user (%s)", name(backupPassword), name("user"))
	}
	for k, dst := range map[string]*bool{"compress": &jc.Compress, "pitr": &jc.PITR} {
		if s, ok := vals[k]; ok {
			c, err := strconv.ParseBool(s)
			if err != nil {
				return nil, fmt.Errorf("%s: invalid value %q, expected true or false", name(k), s)
			}
			*dst = c
		}
	}
	if s, ok := vals["stall-timeout"]; ok {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s: invalid value %q, expected a positive duration", name("stall-timeout"), s)
		}
		cfg.BackupStallTimeout = d
	}
	for k, dst := range map[string]*int{"keep-last": &jc.KeepLast, "keep-hourly": &jc.KeepHourly, "keep-daily": &jc.KeepDaily,
		"keep-weekly": &jc.KeepWeekly, "keep-monthly": &jc.KeepMonthly} {
		s, ok := vals[k]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s: invalid value %q, expected a count of 0 or more", name(k), s)
		}
		*dst = n
	}
	if _, err := schedule.Jobs([]schedule.JobConfig{*jc}, backup.SaveConfig{Endpoints: []string{"self"}}); err != nil {
		var ce *schedule.ConfigError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%s: %w", name(ce.Field), ce.Err)
		}
		return nil, err
	}
	return jc, nil
}

func firstKey(m map[string]string) string {
	for k := range m {
		return k
	}
	return ""
}

// backupCommandTimeout bounds the short requests of a scheduled backup.
const backupCommandTimeout = 5 * time.Second

// startBackups runs the member's backup and defrag schedules, if it has
// any, until the returned function is called, which stops them and waits.
// A schedule that cannot run is logged; the member serves on.
func startBackups(ctx context.Context, e *embed.Etcd, cfg *Config, lg *zap.Logger) (stop func()) {
	if cfg.Backup == nil && cfg.DefragCron == "" {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// etcd's logger adds a stack trace to every error; a failed backup
		// is told by its message.
		blg := lg.Named("backup").WithOptions(zap.AddStacktrace(zapcore.FatalLevel))
		if err := runBackups(ctx, e, cfg, blg); err != nil {
			lg.Error("scheduled backups stopped", zap.Error(err))
		}
	}()
	return func() { cancel(); <-done }
}

// runBackups is the member's share of the cluster's backup schedule: at
// each slot it claims the slot in etcd (see schedule.Claimer) and, only if
// it won, takes the snapshot from itself, named after the slot; and of
// its defrag schedule (see defragJobs).
func runBackups(ctx context.Context, e *embed.Etcd, cfg *Config, lg *zap.Logger) error {
	ec := e.Config()
	if len(ec.AdvertiseClientUrls) == 0 {
		return errors.New("the member advertises no client URL to take snapshots from")
	}
	tls := ec.ClientTLSInfo
	ccfg := etcdclient.Config{Endpoints: []string{ec.AdvertiseClientUrls[0].String()}, CACert: tls.TrustedCAFile,
		Cert: tls.CertFile, Key: tls.KeyFile, InsecureSkipTLSVerify: ec.ClientAutoTLS,
		User: cfg.BackupUser, Password: cfg.BackupPassword,
		DialTimeout: backupCommandTimeout, CommandTimeout: backupCommandTimeout}
	if tls.ClientCertFile != "" {
		ccfg.Cert, ccfg.Key = tls.ClientCertFile, tls.ClientKeyFile
	}
	dial := func(endpoints ...string) (*clientv3.Client, error) {
		c := ccfg
		c.Endpoints = endpoints
		return etcdclient.New(&c, nil, backup.StreamDialOptions()...)
	}
	scfg := schedule.Config{Logger: lg, Registerer: prometheus.DefaultRegisterer}
	var err error
	if scfg.Defrags, err = defragJobs(e, cfg, ccfg, lg); err != nil {
		return err
	}
	if cfg.Backup != nil {
		if scfg.Jobs, err = backupJobs(e, cfg, ccfg, dial, lg); err != nil {
			return err
		}
	}
	if cfg.BackupStallTimeout > 0 {
		scfg.Bucket = []backup.StoreOption{backup.WithStallTimeout(cfg.BackupStallTimeout)}
	}
	s, err := schedule.New(scfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// votersClaim is claim for a voting member; a learner takes no slot (etcd
// refuses its writes, and would fail the claim at every slot): the voters
// claim them.
func votersClaim(e *embed.Etcd, claim schedule.ClaimFunc) schedule.ClaimFunc {
	return func(ctx context.Context, tag string, at time.Time) (bool, error) {
		if e.Server.IsLearner() {
			return false, nil
		}
		return claim(ctx, tag, at)
	}
}

// backupJobs is the member's backup job, its slots claimed.
func backupJobs(e *embed.Etcd, cfg *Config, ccfg etcdclient.Config, dial func(endpoints ...string) (*clientv3.Client, error), lg *zap.Logger) ([]schedule.Job, error) {
	ec := e.Config()
	jobs, err := schedule.Jobs([]schedule.JobConfig{*cfg.Backup}, backup.SaveConfig{Endpoints: ccfg.Endpoints, Dial: dial,
		CommandTimeout: backupCommandTimeout, EtcdopsVersion: cfg.EtcdopsVersion})
	if err != nil {
		return nil, err
	}
	job := &jobs[0]
	if job.Save.Tag == "" {
		job.Save.Tag = backup.ClusterTag(uint64(e.Server.Cluster().ID()))
	}
	// Claims go through the member's client URL, as the snapshot does, so
	// that etcd's auth (user or client certificate) applies to them too;
	// an in-process client carries no credentials. A connection per slot:
	// a refused login or a lost quorum skips that slot, not the schedule.
	ttl := schedule.ClaimTTL(job.Cron, time.Now())
	job.Claim = votersClaim(e, func(ctx context.Context, tag string, at time.Time) (bool, error) {
		cli, err := dial(ccfg.Endpoints...)
		if err != nil {
			return false, err
		}
		defer cli.Close()
		claimer := &schedule.Claimer{KV: cli, Lease: cli, Member: ec.Name, TTL: ttl, Timeout: backupCommandTimeout}
		return claimer.Claim(ctx, tag, at)
	})
	if job.PITR != nil {
		job.PITR.Member = ec.Name
		job.PITR.Eligible = func() bool { return !e.Server.IsLearner() }
	}
	lg.Info("scheduled backups", zap.String("cron", job.Cron.Text), zap.String("to", backup.Redact(job.To)),
		zap.String("tag", job.Save.Tag), zap.String("claims", schedule.ClaimPrefix+job.Save.Tag+"/"), zap.String("user", cfg.BackupUser))
	return jobs, nil
}
