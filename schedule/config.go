package schedule

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/pitr"
)

// JobConfig is a job as written, in a --config file or by flags. Its
// JSON/YAML keys are the flag names of `etcdops schedule`.
type JobConfig struct {
	Name       string   `json:"name"`
	Cron       string   `json:"cron"`
	VerifyCron string   `json:"verify-cron,omitempty"`
	Endpoints  []string `json:"endpoints,omitempty"`
	Member     string   `json:"member,omitempty"`
	To         string   `json:"to"`
	Tag        string   `json:"tag,omitempty"`
	Compress   bool     `json:"compress,omitempty"`
	// AgeRecipients are age public keys to encrypt to.
	AgeRecipients    []string `json:"age-recipients,omitempty"`
	KeepLast         int      `json:"keep-last,omitempty"`
	KeepHourly       int      `json:"keep-hourly,omitempty"`
	KeepDaily        int      `json:"keep-daily,omitempty"`
	KeepWeekly       int      `json:"keep-weekly,omitempty"`
	KeepMonthly      int      `json:"keep-monthly,omitempty"`
	KeepWithin       string   `json:"keep-within,omitempty"`
	Jitter           string   `json:"jitter,omitempty"`
	CatchUp          string   `json:"catch-up,omitempty"`
	HeartbeatURL     string   `json:"heartbeat-url,omitempty"`
	HeartbeatFailURL string   `json:"heartbeat-fail-url,omitempty"`
	// PITR streams the job's changes to its bucket between snapshots.
	PITR            bool   `json:"pitr,omitempty"`
	PITRInterval    string `json:"pitr-interval,omitempty"`
	PITRSegmentSize string `json:"pitr-segment-size,omitempty"`
	// PITRKeepWithin keeps every point of the log within it before the
	// newest snapshot recoverable, whatever the keep-* rules drop.
	PITRKeepWithin string `json:"pitr-keep-within,omitempty"`
	// DefragCron runs a rolling defrag of the job's cluster at its spec
	// (see DefragJobs), tuned by the keys after it, which are the flags
	// of `etcdops defrag`. A job with defrag-cron alone backs nothing up.
	DefragCron           string   `json:"defrag-cron,omitempty"`
	All                  bool     `json:"all,omitempty"`
	MinFree              string   `json:"min-free,omitempty"`
	MinFreeFraction      *float64 `json:"min-free-fraction,omitempty"`
	QuotaFraction        *float64 `json:"quota-fraction,omitempty"`
	QuotaBackendBytes    string   `json:"quota-backend-bytes,omitempty"`
	Compact              bool     `json:"compact,omitempty"`
	CompactKeepRevisions *int64   `json:"compact-keep-revisions,omitempty"`
	MaxLag               *uint64  `json:"max-lag,omitempty"`
	NoDisarm             bool     `json:"no-disarm,omitempty"`
}

// ConfigError is a job setting that is refused. Field is the setting's
// key (the flag name without dashes).
type ConfigError struct {
	Job   string
	Field string
	Err   error
}

func (e *ConfigError) Error() string {
	if e.Job == "" {
		return fmt.Sprintf("%s: %v", e.Field, e.Err)
	}
	return fmt.Sprintf("job %q: %s: %v", e.Job, e.Field, e.Err)
}
func (e *ConfigError) Unwrap() error { return e.Err }

// configFile is the layout of a --config file.
type configFile struct {
	Jobs []JobConfig `json:"jobs"`
}

// LoadConfig reads a YAML file of jobs:
//
//	jobs:
//	  - name: prod
//	    cron: "0 * * * *"
//	    to: s3://etcd-backups?prefix=prod/
//	    keep-daily: 14
//
// Unknown keys are refused.
func LoadConfig(path string) ([]JobConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f configFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %s", path, strings.Join(strings.Fields(err.Error()), " "))
	}
	if len(f.Jobs) == 0 {
		return nil, fmt.Errorf("%s: no jobs", path)
	}
	return f.Jobs, nil
}

// Job is one validated scheduled backup.
type Job struct {
	Name   string
	Cron   Spec
	Verify *Spec // nil: no scheduled verification
	// To is the bucket URL.
	To      string
	Save    backup.SaveConfig
	Policy  backup.Policy
	Jitter  time.Duration
	CatchUp CatchUp
	// Heartbeat is requested after each verified save, HeartbeatFail
	// after each failed run; empty for none.
	Heartbeat, HeartbeatFail string
	// Claim, when set, decides before each run whether this process takes
	// the slot (see Claimer); a run it does not win is skipped.
	Claim ClaimFunc
	// PITR, when set, streams the job's log (see PITR).
	PITR *PITR
}

// Jobs validates job configs and turns them into jobs. base supplies
// what the configs do not set: how to dial, timeouts, logger, version.
// Two jobs may not share a name, nor a tag in one bucket. A config with
// defrag-cron alone is no backup job (see DefragJobs).
func Jobs(configs []JobConfig, base backup.SaveConfig) ([]Job, error) {
	var jobs []Job
	names := map[string]bool{}
	series := map[string]string{}
	for i, jc := range configs {
		if jc.defragOnly() {
			continue
		}
		if jc.Name == "" {
			if len(configs) > 1 {
				return nil, &ConfigError{Job: fmt.Sprintf("#%d", i+1), Field: "name", Err: errors.New("missing; every job of several needs a name")}
			}
			jc.Name = "backup"
		}
		if names[jc.Name] {
			return nil, &ConfigError{Job: jc.Name, Field: "name", Err: errors.New("two jobs have this name")}
		}
		names[jc.Name] = true
		j, err := jc.job(base)
		if err != nil {
			return nil, err
		}
		key := j.To + "\x00" + j.Save.Tag
		if other, ok := series[key]; ok {
			tag := j.Save.Tag
			if tag == "" {
				tag = "(the default)"
			}
			return nil, &ConfigError{Job: jc.Name, Field: "tag", Err: fmt.Errorf("job %q already writes tag %s to %s; give each job its own tag", other, tag, backup.Redact(j.To))}
		}
		series[key] = jc.Name
		jobs = append(jobs, j)
	}
	return jobs, nil
}

func (jc JobConfig) job(base backup.SaveConfig) (Job, error) {
	bad := func(field string, err error) (Job, error) {
		var ie *backup.InputError
		if errors.As(err, &ie) {
			field, err = strings.ReplaceAll(string(ie.Field), " ", "-"), ie.Err
			if ie.Value != "" {
				err = fmt.Errorf("%q: %w", ie.Value, ie.Err)
			}
		}
		return Job{}, &ConfigError{Job: jc.Name, Field: field, Err: err}
	}
	j := Job{Name: jc.Name, To: jc.To, Save: base}
	j.Save.AfterPrune = pitr.AfterPrune
	var err error
	if j.PITR, err = jc.pitrConfig(); err != nil {
		return Job{}, err
	}
	if j.Cron, err = ParseSpec(jc.Cron); err != nil {
		return bad("cron", err)
	}
	if jc.VerifyCron != "" {
		v, err := ParseSpec(jc.VerifyCron)
		if err != nil {
			return bad("verify-cron", err)
		}
		j.Verify = &v
	}
	if jc.To == "" {
		return bad("to", errors.New("missing: every job needs a bucket URL"))
	}
	if u, err := url.Parse(jc.To); err != nil || u.Scheme == "" {
		return bad("to", fmt.Errorf("%q: expected scheme://bucket, with scheme one of %s", backup.Redact(jc.To), strings.Join(backup.Schemes, ", ")))
	}
	if len(jc.Endpoints) > 0 {
		j.Save.Endpoints = jc.Endpoints
	}
	if len(j.Save.Endpoints) == 0 {
		return bad("endpoints", errors.New("missing"))
	}
	j.Save.Member, j.Save.Tag = jc.Member, jc.Tag
	if jc.Tag != "" {
		if err := backup.ValidateTag(jc.Tag); err != nil {
			return bad("tag", err)
		}
	}
	rs, fps, err := backup.ParseRecipients(jc.AgeRecipients)
	if err != nil {
		return bad("age-recipients", errors.Unwrap(err))
	}
	j.Save.Codec = backup.Codec{Compress: jc.Compress, Recipients: rs, Fingerprints: fps}
	within, err := duration(jc.KeepWithin)
	if err != nil {
		return bad("keep-within", err)
	}
	j.Policy = backup.Policy{Last: jc.KeepLast, Hourly: jc.KeepHourly, Daily: jc.KeepDaily, Weekly: jc.KeepWeekly, Monthly: jc.KeepMonthly, Within: within}
	if err := j.Policy.Validate(); err != nil {
		return bad("keep", err)
	}
	if p := j.PITR; p != nil && p.KeepWithin > 0 {
		if j.Policy.Empty() {
			return bad("pitr-keep-within", errors.New("given without a keep-* rule: it keeps more than they do, and without one nothing is pruned"))
		}
		j.Save.KeepMore = pitr.KeepLogWithin(p.KeepWithin)
	}
	if j.Jitter, err = duration(jc.Jitter); err != nil || j.Jitter < 0 {
		return bad("jitter", fmt.Errorf("%q: expected a duration such as 5m", jc.Jitter))
	}
	if j.CatchUp, err = ParseCatchUp(jc.CatchUp); err != nil {
		return bad("catch-up", err)
	}
	for _, h := range []struct {
		field, value string
		dst          *string
	}{{"heartbeat-url", jc.HeartbeatURL, &j.Heartbeat}, {"heartbeat-fail-url", jc.HeartbeatFailURL, &j.HeartbeatFail}} {
		if h.value == "" {
			continue
		}
		if u, err := url.Parse(h.value); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad(h.field, fmt.Errorf("%q: expected an http:// or https:// URL", backup.Redact(h.value)))
		}
		*h.dst = h.value
	}
	return j, nil
}

func duration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: expected a duration such as 30m or 24h", s)
	}
	return d, nil
}
