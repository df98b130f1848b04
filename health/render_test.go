package health

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/etcdops/etcdops/health/jsonschema"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// degradedReport has a member down, a learner and a stale backup.
func degradedReport() (*Report, Thresholds) {
	r := healthyReport()
	down(r, 2)
	r.Members = append(r.Members, Member{ID: 0x4d, Name: "m3", PeerURLs: []string{"http://127.0.0.1:2410"},
		ClientURLs: []string{"http://127.0.0.1:2409"}, IsLearner: true})
	r.Endpoints = append(r.Endpoints, Endpoint{Endpoint: "http://127.0.0.1:2409", Reachable: true, Healthy: true, RTT: 500 * time.Microsecond,
		MemberID: 0x4d, Name: "m3", Version: "3.6.16", StorageVersion: "3.6.0", DBSize: 1 << 20, DBSizeInUse: 1 << 19, DBQuota: 2 << 30,
		Leader: 1, IsLearner: true, RaftTerm: 2, RaftIndex: 99, RaftAppliedIndex: 99})
	r.Backup = &Backup{URL: "s3://backups?prefix=etcd/", Tag: "m0", Newest: "m0_2026-11-20_04-00-00.db.zst", Time: checkTime.Add(-32 * time.Hour),
		Log: &LogEnd{Segment: "m0_log/00000000000000001201-00000000000000001290.log.zst", Revision: 1290, Written: checkTime.Add(-30 * time.Hour)}}
	th := DefaultThresholds()
	th.MaxBackupAge = 25 * time.Hour
	return r, th
}

func TestRenderGolden(t *testing.T) {
	r, th := degradedReport()
	v := Evaluate(r, th)
	for _, f := range Formats {
		t.Run(string(f), func(t *testing.T) {
			var buf bytes.Buffer
			if err := Render(&buf, f, r, v, th); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "degraded."+string(f))
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if buf.String() != string(want) {
				t.Errorf("%s differs from %s (go test -update rewrites it):\n%s", f, golden, buf.String())
			}
		})
	}
}

// reports are the shapes of report every renderer must handle.
func reports() map[string]func() (*Report, Thresholds) {
	return map[string]func() (*Report, Thresholds){
		"healthy":  func() (*Report, Thresholds) { return healthyReport(), DefaultThresholds() },
		"degraded": degradedReport,
		"unreachable": func() (*Report, Thresholds) {
			r := healthyReport()
			for i := range r.Endpoints {
				down(r, i)
			}
			r.Members, r.AlarmsKnown = nil, false
			r.Backup = &Backup{URL: "file:///nowhere", Error: "list: no such directory"}
			return r, DefaultThresholds()
		},
		"alarm": func() (*Report, Thresholds) {
			r := healthyReport()
			r.Alarms = []Alarm{{MemberID: 2, Type: "NOSPACE"}, {MemberID: 9, Type: "CORRUPT"}}
			r.Endpoints[1].Alarms = []string{"NOSPACE"}
			r.Endpoints[1].Errors = []string{`memberID:2 alarm:NOSPACE "quoted" \ back`}
			r.Endpoints[0].DBQuota = -1
			return r, DefaultThresholds()
		},
	}
}

func TestJSONMatchesSchema(t *testing.T) {
	for name, mk := range reports() {
		t.Run(name, func(t *testing.T) {
			r, th := mk()
			v := Evaluate(r, th)
			var buf bytes.Buffer
			if err := WriteJSON(&buf, r, v, th); err != nil {
				t.Fatal(err)
			}
			if err := jsonschema.Validate(Schema, buf.Bytes()); err != nil {
				t.Fatalf("%v\n%s", err, buf.String())
			}
			var doc struct {
				Endpoints []json.RawMessage `json:"endpoints"`
				ExitCode  int               `json:"exit_code"`
			}
			if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			if len(doc.Endpoints) != len(r.Endpoints) || doc.ExitCode != int(v.Status) {
				t.Errorf("%d endpoints, exit code %d; want %d, %d", len(doc.Endpoints), doc.ExitCode, len(r.Endpoints), v.Status)
			}
		})
	}
}

func TestSchemaRejects(t *testing.T) {
	r, th := degradedReport()
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r, Evaluate(r, th), th); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, to string }{
		{`"status": "WARNING"`, `"status": "BAD"`},
		{`"schema_version": 1,`, `"schema_version": 1, "extra": 1,`},
		{`"reachable": false,`, ``},
		{`"raft_term": 2,`, `"raft_term": "2",`},
	} {
		doc := strings.Replace(buf.String(), c.from, c.to, 1)
		if err := jsonschema.Validate(Schema, []byte(doc)); err == nil {
			t.Errorf("replacing %s by %s: the schema accepts it", c.from, c.to)
		}
	}
}

func TestPrometheusParses(t *testing.T) {
	for name, mk := range reports() {
		t.Run(name, func(t *testing.T) {
			r, th := mk()
			v := Evaluate(r, th)
			var buf bytes.Buffer
			if err := WritePrometheus(&buf, r, v); err != nil {
				t.Fatal(err)
			}
			var p expfmt.TextParser
			families, err := p.TextToMetricFamilies(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatalf("%v\n%s", err, buf.String())
			}
			for name := range families {
				if !strings.HasPrefix(name, "etcdops_") {
					t.Errorf("metric %s lacks the etcdops_ prefix", name)
				}
			}
			status := families["etcdops_health_status"].GetMetric()[0].GetGauge().GetValue()
			if int(status) != int(v.Status) {
				t.Errorf("etcdops_health_status %v, want %d", status, v.Status)
			}
			if up := families["etcdops_endpoint_up"].GetMetric(); len(up) != len(r.Endpoints) {
				t.Errorf("etcdops_endpoint_up has %d samples, want one per endpoint (%d)", len(up), len(r.Endpoints))
			}
		})
	}
}

func TestNagiosIsOneLine(t *testing.T) {
	for name, mk := range reports() {
		r, th := mk()
		v := Evaluate(r, th)
		var buf bytes.Buffer
		if err := WriteNagios(&buf, r, v, th); err != nil {
			t.Fatal(err)
		}
		line := buf.String()
		if strings.Count(line, "\n") != 1 || strings.Count(line, "|") != 1 || !strings.HasPrefix(line, "ETCD "+v.Status.String()+" - ") {
			t.Errorf("%s: %q is not one status line with performance data", name, line)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, f := range Formats {
		if got, err := ParseFormat(string(f)); got != f || err != nil {
			t.Errorf("ParseFormat(%s) = %v, %v", f, got, err)
		}
	}
	if _, err := ParseFormat("yaml"); err == nil || !strings.Contains(err.Error(), "expected one of table, json, prometheus, nagios") {
		t.Errorf("ParseFormat(yaml) = %v", err)
	}
}
