package server

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"
	"sigs.k8s.io/yaml"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcdops/etcdops/internal/etcdclient"
	"github.com/etcdops/etcdops/maintenance"
	"github.com/etcdops/etcdops/schedule"
)

// defragCronKey is serve's setting for the cluster's scheduled rolling
// defrag: a flag --defrag-cron, a variable ETCDOPS_DEFRAG_CRON and a config
// file key defrag-cron, with the precedence of the backup keys.
const (
	defragCronKey   = "defrag-cron"
	defragCronEnv   = "ETCDOPS_DEFRAG_CRON"
	defragCronUsage = "run a rolling defrag of the whole cluster (etcdops defrag's default rule, leader last) at `SPEC`: every member may set it, one member runs each slot"
)

// isServeFlag reports whether a flag is serve's own, not etcd's.
func isServeFlag(name string) bool { return isBackupFlag(name) || name == defragCronKey }

// defragCronSetting reads --defrag-cron, ETCDOPS_DEFRAG_CRON or the config
// file key defrag-cron, and checks its spec; "" when none is set.
func (f *flagSet) defragCronSetting(configFile string) (string, error) {
	spec, source := "", ""
	if configFile != "" {
		b, err := os.ReadFile(configFile)
		if err != nil {
			return "", fmt.Errorf("--config-file: %w", err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			return "", fmt.Errorf("config file %s: %w", configFile, oneLine(err))
		}
		if v, ok := lookupFold(m, defragCronKey); ok && v != nil {
			spec, source = fmt.Sprint(v), "config file key "+defragCronKey
		}
	}
	if v, ok := os.LookupEnv(defragCronEnv); ok {
		spec, source = v, defragCronEnv
	}
	if fl := f.fs.Lookup(defragCronKey); fl != nil && f.isSet(defragCronKey) {
		spec, source = fl.Value.String(), "--"+defragCronKey
	}
	if source == "" {
		return "", nil
	}
	if _, err := schedule.ParseSpec(spec); err != nil {
		return "", fmt.Errorf("%s: %w", source, err)
	}
	return spec, nil
}

// isSet reports whether the flag name was given.
func (f *flagSet) isSet(name string) bool {
	set := false
	f.fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}

// defragJobs is the member's share of the cluster's defrag schedule, none
// without --defrag-cron: at each slot it claims the slot in etcd (apart
// from backup slots) and, only if it won, runs the rolling defrag of the
// whole cluster, reaching the other members through the member list.
func defragJobs(e *embed.Etcd, cfg *Config, ccfg etcdclient.Config, lg *zap.Logger) ([]schedule.DefragJob, error) {
	if cfg.DefragCron == "" {
		return nil, nil
	}
	base := maintenance.Options{Client: ccfg, RequestTimeout: backupCommandTimeout}
	jobs, err := schedule.DefragJobs([]schedule.JobConfig{{Name: "defrag", DefragCron: cfg.DefragCron}}, base)
	if err != nil {
		return nil, err
	}
	job := &jobs[0]
	name := e.Config().Name
	ttl := schedule.ClaimTTL(job.Cron, time.Now())
	job.Claim = votersClaim(e, func(ctx context.Context, tag string, at time.Time) (bool, error) {
		cli, err := etcdclient.New(&ccfg, nil)
		if err != nil {
			return false, err
		}
		defer cli.Close()
		claimer := &schedule.Claimer{Prefix: schedule.DefragClaimPrefix, KV: cli, Lease: cli, Member: name, TTL: ttl, Timeout: backupCommandTimeout}
		return claimer.Claim(ctx, tag, at)
	})
	lg.Info("scheduled rolling defrags", zap.String("cron", job.Cron.Text), zap.String("claims", schedule.DefragClaimPrefix+job.Name+"/"),
		zap.String("lock", schedule.DefragLockPrefix))
	return jobs, nil
}
