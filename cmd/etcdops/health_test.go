package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcdops/etcdops/health"
	"github.com/etcdops/etcdops/health/jsonschema"
	"github.com/etcdops/etcdops/internal/etcdtest"
)

// healthRun is one run of `etcdops health`.
type healthRun struct {
	stdout, stderr string
	code           int
}

// runHealthBin runs the etcdops binary's health command with args and env.
func runHealthBin(t *testing.T, env []string, args ...string) healthRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, etcdtest.EtcdopsBin(t), append([]string{"health"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("etcdops health: %v", err)
	}
	return healthRun{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// healthJSON is the part of the JSON report the tests read.
type healthJSON struct {
	Status  string `json:"status"`
	Reasons []struct {
		Status, Check, Message string
	} `json:"reasons"`
	Cluster struct {
		Voters, Learners, Quorum int
		VotersUp                 int `json:"voters_up"`
		Alarms                   []struct {
			Alarm string `json:"alarm"`
		} `json:"alarms"`
	} `json:"cluster"`
	Endpoints []struct {
		Endpoint         string   `json:"endpoint"`
		Reachable        bool     `json:"reachable"`
		Healthy          bool     `json:"healthy"`
		MemberID         string   `json:"member_id"`
		Version          string   `json:"version"`
		DBSizeBytes      int64    `json:"db_size_bytes"`
		DBSizeInUseBytes int64    `json:"db_size_in_use_bytes"`
		DBQuotaBytes     int64    `json:"db_quota_bytes"`
		LeaderID         string   `json:"leader_id"`
		IsLearner        bool     `json:"is_learner"`
		RaftTerm         uint64   `json:"raft_term"`
		RaftIndex        uint64   `json:"raft_index"`
		RaftAppliedIndex uint64   `json:"raft_applied_index"`
		Alarms           []string `json:"alarms"`
		Errors           []string `json:"errors"`
	} `json:"endpoints"`
	Backup *struct {
		Newest string `json:"newest"`
		Log    *struct {
			Segment      string `json:"segment"`
			LastRevision int64  `json:"last_revision"`
		} `json:"log"`
	} `json:"backup"`
}

// parseHealthJSON checks the output against the documented schema and decodes it.
func parseHealthJSON(t *testing.T, out string) healthJSON {
	t.Helper()
	if err := jsonschema.Validate(health.Schema, []byte(out)); err != nil {
		t.Fatalf("JSON report does not match health/report.schema.json: %v\n%s", err, out)
	}
	var doc healthJSON
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// parseProm parses Prometheus text output and returns gauge values by
// metric name and then by the value of label (or "" without it).
func parseProm(t *testing.T, out, label string) map[string]map[string]float64 {
	t.Helper()
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(strings.NewReader(out))
	if err != nil {
		t.Fatalf("Prometheus output does not parse: %v\n%s", err, out)
	}
	got := map[string]map[string]float64{}
	for name, f := range families {
		got[name] = map[string]float64{}
		for _, m := range f.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					key = l.GetValue()
				}
			}
			got[name][key] = m.GetGauge().GetValue()
		}
	}
	return got
}

func TestHealthBadInput(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no endpoints", nil, []string{"--endpoints", ""}, "--endpoints"},
		{"malformed endpoint", nil, []string{"--endpoints", "localhost"}, `"localhost": expected host:port`},
		{"bad scheme", nil, []string{"--endpoints", "ftp://127.0.0.1:1"}, "expected scheme http, https, unix or unixs"},
		{"malformed endpoint from the environment", []string{"ETCDCTL_ENDPOINTS=127.0.0.1"}, nil, `"127.0.0.1": expected host:port`},
		{"negative threshold", nil, []string{"--warn-db-percent=-5"}, "--warn-db-percent -5: expected a percentage from 0 to 100"},
		{"inverted thresholds", nil, []string{"--warn-db-percent=96", "--crit-db-percent=90"}, "--warn-db-percent 96: expected at most --crit-db-percent 90"},
		{"unknown format", nil, []string{"-w", "yaml"}, `-w "yaml": expected one of table, json, prometheus, nagios`},
		{"unknown flag", nil, []string{"--bogus"}, "flag provided but not defined: -bogus"},
		{"argument", nil, []string{"127.0.0.1:2379"}, "endpoints go in --endpoints"},
		{"no timeout", nil, []string{"--command-timeout=0"}, "--command-timeout: expected a positive duration"},
		{"backups without max age", nil, []string{"--backups", "file:///nonexistent"}, "--backups: expected --max-backup-age too"},
		{"max age without backups", nil, []string{"--max-backup-age", "1h"}, "--max-backup-age and --tag: given without --backups"},
		{"negative max age", nil, []string{"--backups", "file:///x", "--max-backup-age=-1h"}, "--max-backup-age -1h0m0s: expected a positive duration"},
		{"bad backups URL", nil, []string{"--backups", "nowhere", "--max-backup-age=1h"}, "expected a bucket URL"},
		{"unknown bucket scheme", nil, []string{"--backups", "ftp://x/y", "--max-backup-age=1h"}, `--backups "ftp://x/y": unknown scheme`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runHealthBin(t, tt.env, tt.args...)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if r.code != 3 || len(lines) != 1 || !strings.HasPrefix(lines[0], "etcdops: health: ") || !strings.Contains(lines[0], tt.want) {
				t.Errorf("exit %d, stderr %q; want exit 3 and one line saying %q", r.code, r.stderr, tt.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}

func TestHealthNothingReachable(t *testing.T) {
	r := runHealthBin(t, nil, "--endpoints", etcdtest.FreeAddr(t), "--command-timeout=300ms", "-w", "nagios")
	if r.code != 3 || !strings.HasPrefix(r.stdout, "ETCD UNKNOWN - no endpoint answered") {
		t.Errorf("exit %d, %q; want 3 and UNKNOWN", r.code, r.stdout)
	}
}

func TestHealthNOSPACE(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1, func(cfg *embed.Config) { cfg.QuotaBackendBytes = 128 << 10 })
	cli := c.Client()
	value := strings.Repeat("x", 8<<10)
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cli.Put(ctx, fmt.Sprintf("k%d", i), value)
		cancel()
		if errors.Is(err, rpctypes.ErrNoSpace) {
			break
		}
		if err != nil || i > 1000 {
			t.Fatalf("put %d: %v (no NOSPACE alarm yet)", i, err)
		}
	}
	eps := c.Endpoints()
	r := runHealthBin(t, nil, "--endpoints", eps[0], "-w", "json")
	doc := parseHealthJSON(t, r.stdout)
	if r.code != 2 || len(doc.Cluster.Alarms) != 1 || doc.Cluster.Alarms[0].Alarm != "NOSPACE" {
		t.Fatalf("exit %d, alarms %+v; want 2 and NOSPACE\n%s", r.code, doc.Cluster.Alarms, r.stdout)
	}
	e := doc.Endpoints[0]
	if e.Healthy || len(e.Alarms) != 1 || e.DBQuotaBytes != 128<<10 {
		t.Errorf("endpoint %+v, want unhealthy with the NOSPACE alarm and a 128 KiB quota", e)
	}
	if ctl := etcdctlHealth(t, eps); ctl[eps[0]] != e.Healthy {
		t.Errorf("etcdctl endpoint health says %v, we say %v", ctl[eps[0]], e.Healthy)
	}
	nagios := runHealthBin(t, nil, "--endpoints", eps[0], "-w", "nagios")
	if nagios.code != 2 || !strings.Contains(nagios.stdout, "NOSPACE alarm on member m0") || !strings.Contains(nagios.stdout, "alarms=1;") {
		t.Errorf("nagios: exit %d, %q", nagios.code, nagios.stdout)
	}
}

func TestHealthLearner(t *testing.T) {
	specs := etcdtest.Specs(t, 2, t.TempDir())
	first := specs[0]
	first.InitialCluster = first.Name + "=" + first.PeerURL
	c := etcdtest.StartEmbeddedSpecs(t, []etcdtest.MemberSpec{first})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Client().MemberAddAsLearner(ctx, []string{specs[1].PeerURL}); err != nil {
		t.Fatal(err)
	}
	// Before the learner starts, it is a member that never started.
	r := runHealthBin(t, nil, "--endpoints", first.ClientURL, "-w", "json")
	if doc := parseHealthJSON(t, r.stdout); r.code != 1 || doc.Cluster.Learners != 1 || len(doc.Endpoints) != 1 {
		t.Errorf("unstarted learner: exit %d, %+v", r.code, doc.Cluster)
	}

	learner := specs[1]
	learner.ClusterState = "existing"
	etcdtest.StartEmbeddedSpecs(t, []etcdtest.MemberSpec{learner})
	etcdtest.Eventually(t, 20*time.Second, func() error {
		r := runHealthBin(t, nil, "--endpoints", first.ClientURL, "--cluster", "-w", "json", "--command-timeout=2s")
		doc := parseHealthJSON(t, r.stdout)
		if r.code != 1 || len(doc.Endpoints) != 2 || len(doc.Reasons) != 1 || doc.Reasons[0].Check != "learners" {
			return fmt.Errorf("exit %d, reasons %+v", r.code, doc.Reasons)
		}
		for _, e := range doc.Endpoints {
			if e.Endpoint == learner.ClientURL && (!e.IsLearner || !e.Healthy) {
				return fmt.Errorf("learner endpoint %+v", e)
			}
		}
		return nil
	})
}

func TestHealthTLSFromEnvironment(t *testing.T) {
	ca := etcdtest.NewCA(t)
	c := etcdtest.StartEmbeddedSpecs(t, etcdtest.WithTLS(t, etcdtest.Specs(t, 1, t.TempDir()), ca))
	pair := ca.Issue(t, "monitor")
	ep := c.Members[0].Spec.ClientURL
	env := []string{"ETCDCTL_ENDPOINTS=" + ep, "ETCDCTL_CACERT=" + ca.CertFile, "ETCDCTL_CERT=" + pair.CertFile, "ETCDCTL_KEY=" + pair.KeyFile}
	if r := runHealthBin(t, env, "-w", "nagios"); r.code != 0 || !strings.HasPrefix(r.stdout, "ETCD OK - ") {
		t.Errorf("with a client certificate: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	r := runHealthBin(t, env[:2], "-w", "json", "--command-timeout=1s")
	if doc := parseHealthJSON(t, r.stdout); r.code != 3 || doc.Endpoints[0].Reachable {
		t.Errorf("without a client certificate: exit %d, reachable %v; want 3 (nothing reachable)", r.code, doc.Endpoints[0].Reachable)
	}
}

// TestHealthPermissionDenied checks etcdctl's rule: a user who may not read
// the health key still proves the member healthy, since the denied read
// went through consensus.
func TestHealthPermissionDenied(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	etcdtest.EnableAuth(t, c.Client(), "rootpw", "monitor:monpw")
	eps := c.Endpoints()
	r := runHealthBin(t, []string{"ETCDCTL_PASSWORD=monpw"}, "--endpoints", eps[0], "--user", "monitor", "-w", "json")
	doc := parseHealthJSON(t, r.stdout)
	if r.code != 0 || !doc.Endpoints[0].Healthy {
		t.Errorf("user without permissions: exit %d, endpoint %+v; want 0 and healthy", r.code, doc.Endpoints[0])
	}
	out, _ := etcdtest.RunEtcdctl(t, eps, "endpoint", "health", "-w", "json", "--user", "monitor:monpw")
	if !strings.Contains(out, `"health":true`) {
		t.Errorf("etcdctl endpoint health disagrees: %s", out)
	}
	if r := runHealthBin(t, nil, "--endpoints", eps[0], "--user", "monitor:wrong", "-w", "json"); r.code != 3 {
		t.Errorf("wrong password: exit %d, want 3 (nothing reachable)\n%s", r.code, r.stdout)
	}
}
