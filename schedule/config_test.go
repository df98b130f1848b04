package schedule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdops/etcdops/backup"
)

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jobs.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigFile(t *testing.T) {
	base := backup.SaveConfig{Endpoints: []string{"http://127.0.0.1:2379"}}
	good := `
jobs:
  - name: hourly
    cron: "0 * * * *"
    to: file:///backups
    tag: prod
    compress: true
    keep-hourly: 48
    keep-within: 24h
    jitter: 5m
    heartbeat-url: https://hc-ping.com/x
  - name: offsite
    cron: "CRON_TZ=Europe/Berlin 30 2 * * *"
    verify-cron: "@weekly"
    endpoints: [http://10.0.0.1:2379, http://10.0.0.2:2379]
    to: s3://offsite
    catch-up: none
`
	jcs, err := LoadConfig(writeConfig(t, good))
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := Jobs(jcs, base)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].Save.Tag != "prod" || !jobs[0].Save.Codec.Compress || jobs[0].Policy.Hourly != 48 ||
		jobs[0].Jitter.Minutes() != 5 || jobs[0].CatchUp != CatchUpOnce || jobs[0].Save.Endpoints[0] != "http://127.0.0.1:2379" ||
		jobs[1].Verify == nil || jobs[1].CatchUp != CatchUpNone || len(jobs[1].Save.Endpoints) != 2 {
		t.Errorf("jobs %+v", jobs)
	}

	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "jobs:\n  - name: a\n    cron: '@hourly'\n    to: mem://\n    keep-dialy: 3\n", `unknown field "keep-dialy"`},
		{"no jobs", "jobs: []\n", "no jobs"},
		{"no bucket", "jobs:\n  - name: a\n    cron: '@hourly'\n", `job "a": to: missing`},
		{"bad spec", "jobs:\n  - name: a\n    cron: '0 * * *'\n    to: mem://\n", `job "a": cron: cron spec "0 * * *": expected exactly 5 fields`},
		{"bad zone", "jobs:\n  - name: a\n    cron: 'CRON_TZ=Nowhere/Land @daily'\n    to: mem://\n", `provided bad location Nowhere/Land`},
		{"duplicate name", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', tag: x}\n  - {name: a, cron: '@daily', to: 'mem://', tag: y}\n", `job "a": name: two jobs have this name`},
		{"same tag and bucket", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', tag: x}\n  - {name: b, cron: '@daily', to: 'mem://', tag: x}\n", `job "b": tag: job "a" already writes tag x to mem:`},
		{"both default tags", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://'}\n  - {name: b, cron: '@daily', to: 'mem://'}\n", `already writes tag (the default)`},
		{"nameless among several", "jobs:\n  - {cron: '@hourly', to: 'mem://', tag: x}\n  - {name: b, cron: '@daily', to: 'mem://', tag: y}\n", `job "#1": name: missing`},
		{"bad retention", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', keep-last: -1}\n", `job "a": keep-last: "-1": expected a count of 0 or more`},
		{"bad jitter", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', jitter: soon}\n", `job "a": jitter: "soon"`},
		{"bad catch-up", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', catch-up: always}\n", `catch-up: invalid value "always"`},
		{"bad heartbeat", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', heartbeat-url: 'hc-ping.com/x'}\n", `heartbeat-url: "hc-ping.com/x": expected an http:// or https:// URL`},
		{"bad bucket URL", "jobs:\n  - {name: a, cron: '@hourly', to: 'backups'}\n", `to: "backups": expected scheme://bucket`},
		{"bad tag", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', tag: 'a/b'}\n", `job "a": tag: "a/b": expected letters`},
		{"bad recipient", "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', age-recipients: [nope]}\n", `age-recipients:`},
	} {
		jcs, err := LoadConfig(writeConfig(t, tc.yaml))
		if err == nil {
			_, err = Jobs(jcs, base)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v; want one line with %q", tc.name, err, tc.want)
		}
	}
}
