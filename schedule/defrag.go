package schedule

import (
	"errors"
	"fmt"

	"github.com/etcdops/etcdops/defrag"
	"github.com/etcdops/etcdops/maintenance"
)

// DefragClaimPrefix is where the members of a cluster that schedule its
// rolling defragmentation (serve --defrag-cron) claim each slot, apart
// from the slots of scheduled backups (ClaimPrefix): a backup slot and a
// defrag slot at the same time are claimed independently.
const DefragClaimPrefix = "/etcdops/defrag/slots/"

// DefragLockPrefix is the cluster's defrag lock (an etcd mutex whose
// holder's lease ends with its process): every scheduled rolling defrag
// holds it while it runs, so that two never overlap, whichever processes
// or members run them.
const DefragLockPrefix = "/etcdops/defrag/lock"

// DefragJob is a scheduled rolling defragmentation of one cluster: at
// each slot, maintenance.Run with Options.
type DefragJob struct {
	Name    string
	Cron    Spec
	Options maintenance.Options
	// Claim, when set, decides before each run whether this process takes
	// the slot (see Claimer, with Prefix DefragClaimPrefix); a slot it does
	// not win is skipped.
	Claim ClaimFunc
}

// defragKeys are the job keys that tune a rolling defrag; they need
// defrag-cron.
func (jc JobConfig) defragKeys() []string {
	var set []string
	for _, k := range []struct {
		key string
		set bool
	}{{"all", jc.All}, {"min-free", jc.MinFree != ""}, {"min-free-fraction", jc.MinFreeFraction != nil},
		{"quota-fraction", jc.QuotaFraction != nil}, {"quota-backend-bytes", jc.QuotaBackendBytes != ""}, {"compact", jc.Compact},
		{"compact-keep-revisions", jc.CompactKeepRevisions != nil}, {"max-lag", jc.MaxLag != nil}, {"no-disarm", jc.NoDisarm}} {
		if k.set {
			set = append(set, k.key)
		}
	}
	return set
}

// defragOnly reports whether the config is a rolling defrag and no backup.
func (jc JobConfig) defragOnly() bool {
	return jc.DefragCron != "" && jc.Cron == "" && jc.To == "" && !jc.PITR && jc.PITRKeepWithin == ""
}

// DefragJobs validates the defrag settings of job configs (defrag-cron
// and the keys that tune it, named as `etcdops defrag`'s flags) and turns
// those with defrag-cron into defrag jobs. base supplies the client
// settings and what the configs do not set.
func DefragJobs(configs []JobConfig, base maintenance.Options) ([]DefragJob, error) {
	var jobs []DefragJob
	names := map[string]bool{}
	for i, jc := range configs {
		if jc.DefragCron == "" {
			if keys := jc.defragKeys(); len(keys) > 0 {
				return nil, &ConfigError{Job: jc.Name, Field: keys[0], Err: errors.New("given without defrag-cron")}
			}
			continue
		}
		if jc.Name == "" {
			if len(configs) > 1 {
				return nil, &ConfigError{Job: fmt.Sprintf("#%d", i+1), Field: "name", Err: errors.New("missing; every job of several needs a name")}
			}
			jc.Name = "defrag"
		}
		if names[jc.Name] {
			return nil, &ConfigError{Job: jc.Name, Field: "name", Err: errors.New("two jobs have this name")}
		}
		names[jc.Name] = true
		j, err := jc.defragJob(base)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// defragFields names the job key of each defrag.Field.
var defragFields = map[defrag.Field]string{
	defrag.FieldMinFree:         "min-free",
	defrag.FieldMinFreeFraction: "min-free-fraction",
	defrag.FieldQuotaFraction:   "quota-fraction",
	defrag.FieldFallbackQuota:   "quota-backend-bytes",
	defrag.FieldTimeout:         "timeout",
	defrag.FieldKeepRevisions:   "compact-keep-revisions",
}

func (jc JobConfig) defragJob(base maintenance.Options) (DefragJob, error) {
	bad := func(field string, err error) (DefragJob, error) {
		return DefragJob{}, &ConfigError{Job: jc.Name, Field: field, Err: err}
	}
	j := DefragJob{Name: jc.Name, Options: base}
	var err error
	if j.Cron, err = ParseSpec(jc.DefragCron); err != nil {
		return bad("defrag-cron", err)
	}
	o := &j.Options
	if len(jc.Endpoints) > 0 {
		o.Client.Endpoints = jc.Endpoints
	}
	if len(o.Client.Endpoints) == 0 {
		return bad("endpoints", errors.New("missing"))
	}
	if o.Rule.MinFreeFraction == 0 {
		o.Rule = defrag.DefaultRule()
	}
	if jc.All {
		if keys := jc.ruleKeys(); len(keys) > 0 {
			return bad("all", fmt.Errorf("given with %s: expected one of them: all defragments every member by no rule", keys[0]))
		}
		o.Rule.All = true
	}
	for _, s := range []struct {
		key, value string
		dst        *int64
	}{{"min-free", jc.MinFree, &o.Rule.MinFree}, {"quota-backend-bytes", jc.QuotaBackendBytes, &o.Rule.FallbackQuota}} {
		if s.value == "" {
			continue
		}
		n, err := ParseSize(s.value)
		if err != nil {
			return bad(s.key, fmt.Errorf("%q: expected a size of 0 or more, such as 100MiB", s.value))
		}
		*s.dst = n
	}
	if jc.MinFreeFraction != nil {
		o.Rule.MinFreeFraction = *jc.MinFreeFraction
	}
	if jc.QuotaFraction != nil {
		o.Rule.QuotaFraction = *jc.QuotaFraction
	}
	if jc.CompactKeepRevisions != nil && !jc.Compact {
		return bad("compact-keep-revisions", errors.New("given without compact"))
	}
	o.Compact = jc.Compact
	if o.KeepRevisions == 0 {
		o.KeepRevisions = maintenance.DefaultKeepRevisions
	}
	if jc.CompactKeepRevisions != nil {
		o.KeepRevisions = *jc.CompactKeepRevisions
	}
	if jc.MaxLag != nil {
		if *jc.MaxLag == 0 {
			return bad("max-lag", errors.New("0: expected at least 1 entry"))
		}
		o.MaxLag = *jc.MaxLag
	}
	o.Disarm = !jc.NoDisarm
	// A scheduled run stops at its first failure: the next slot tries again.
	o.ContinueOnError, o.DryRun = false, false
	if err := o.Validate(); err != nil {
		var ie *defrag.InputError
		if errors.As(err, &ie) {
			return bad(defragFields[ie.Field], fmt.Errorf("%s: %s", ie.Value, ie.Reason))
		}
		return bad("defrag-cron", err)
	}
	return j, nil
}

// ruleKeys are the rule's keys that are set.
func (jc JobConfig) ruleKeys() []string {
	var set []string
	for _, k := range jc.defragKeys() {
		if k == "min-free" || k == "min-free-fraction" || k == "quota-fraction" {
			set = append(set, k)
		}
	}
	return set
}
