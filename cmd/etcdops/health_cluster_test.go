package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcdops/health"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/pitr"
)

// TestHealthServeCluster follows a cluster of `etcdops serve` members from
// healthy to one member killed to quorum lost, in every output format.
func TestHealthServeCluster(t *testing.T) {
	c := etcdtest.StartServeCluster(t, 3)
	eps := c.Endpoints()
	args := func(format string, extra ...string) []string {
		return append([]string{"--endpoints", strings.Join(eps, ","), "--command-timeout=1s", "-w", format}, extra...)
	}

	t.Run("healthy", func(t *testing.T) {
		checkFormats(t, args, 0, "")
		r := runHealthBin(t, []string{"ETCDCTL_ENDPOINTS=" + eps[1]}, "--cluster", "-w", "json")
		if doc := parseHealthJSON(t, r.stdout); r.code != 0 || len(doc.Endpoints) != 3 || doc.Cluster.Voters != 3 {
			t.Errorf("--cluster from one endpoint: exit %d, %d endpoints, %d voters; want 0, 3, 3", r.code, len(doc.Endpoints), doc.Cluster.Voters)
		}
	})
	t.Run("agrees with etcdctl", func(t *testing.T) { agreesWithEtcdctl(t, eps) })
	t.Run("backups", func(t *testing.T) { backupFreshness(t, eps) })

	c.Procs[2].Kill(t)
	t.Run("one member killed", func(t *testing.T) {
		waitForExit(t, args("json"), 1)
		checkFormats(t, args, 1, eps[2])
		doc := parseHealthJSON(t, runHealthBin(t, nil, args("json")...).stdout)
		if doc.Cluster.VotersUp != 2 || doc.Reasons[0].Check != "members" || doc.Endpoints[2].Reachable {
			t.Errorf("report %+v, want 2 voters up and m2 down", doc)
		}
		ctlHealth := etcdctlHealth(t, eps)
		for _, e := range doc.Endpoints {
			if e.Healthy != ctlHealth[e.Endpoint] {
				t.Errorf("%s: healthy %v, etcdctl endpoint health says %v", e.Endpoint, e.Healthy, ctlHealth[e.Endpoint])
			}
		}
	})

	c.Procs[1].Kill(t)
	t.Run("two members killed", func(t *testing.T) {
		waitForExit(t, args("json"), 2)
		checkFormats(t, args, 2, eps[1])
		doc := parseHealthJSON(t, runHealthBin(t, nil, args("json")...).stdout)
		if doc.Reasons[0].Check != "quorum" || doc.Cluster.VotersUp != 0 {
			t.Errorf("reasons %+v, want no quorum first", doc.Reasons)
		}
	})
}

// checkFormats runs health in each format, wanting exit code want and, when
// dead is set, that endpoint reported down in every format.
func checkFormats(t *testing.T, args func(string, ...string) []string, want int, dead string) {
	t.Helper()
	status := health.Status(want).String()
	for _, f := range health.Formats {
		r := runHealthBin(t, nil, args(string(f))...)
		if r.code != want {
			t.Errorf("-w %s: exit %d, want %d\n%s%s", f, r.code, want, r.stdout, r.stderr)
			continue
		}
		switch f {
		case health.FormatTable:
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, "CLUSTER "+status+":") {
				t.Errorf("table's last line %q, want the verdict %s", last, status)
			}
			if dead != "" && !strings.Contains(r.stdout, dead+"  ") {
				t.Errorf("table lacks %s:\n%s", dead, r.stdout)
			}
		case health.FormatJSON:
			doc := parseHealthJSON(t, r.stdout)
			if doc.Status != status || len(doc.Endpoints) != 3 {
				t.Errorf("json: status %s with %d endpoints, want %s with 3", doc.Status, len(doc.Endpoints), status)
			}
			for _, e := range doc.Endpoints {
				if e.Endpoint == dead && (e.Reachable || len(e.Errors) == 0) {
					t.Errorf("json: dead %s reachable %v, errors %q", dead, e.Reachable, e.Errors)
				}
			}
		case health.FormatPrometheus:
			m := parseProm(t, r.stdout, "endpoint")
			if m["etcdops_health_status"][""] != float64(want) || len(m["etcdops_endpoint_up"]) != 3 {
				t.Errorf("prometheus: status %v, endpoint_up %v", m["etcdops_health_status"], m["etcdops_endpoint_up"])
			}
			if up, ok := m["etcdops_endpoint_up"][dead]; dead != "" && (!ok || up != 0) {
				t.Errorf("prometheus: etcdops_endpoint_up for %s is %v (present %v), want 0", dead, up, ok)
			}
		case health.FormatNagios:
			if !strings.HasPrefix(r.stdout, "ETCD "+status+" - ") || strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, dead) {
				t.Errorf("nagios: %q", r.stdout)
			}
		}
	}
}

// waitForExit runs health until it exits with code want (an election may
// follow a kill).
func waitForExit(t *testing.T, args []string, want int) {
	t.Helper()
	etcdtest.Eventually(t, 20*time.Second, func() error {
		if r := runHealthBin(t, nil, args...); r.code != want {
			return fmt.Errorf("exit %d, want %d: %s", r.code, want, r.stderr)
		}
		return nil
	})
}

// etcdctlStatus is an entry of `etcdctl endpoint status -w json`.
type etcdctlStatus struct {
	Endpoint string
	Status   struct {
		Header struct {
			MemberID uint64 `json:"member_id"`
		} `json:"header"`
		Version          string
		DBSize           int64 `json:"dbSize"`
		DBSizeInUse      int64 `json:"dbSizeInUse"`
		DBSizeQuota      int64 `json:"dbSizeQuota"`
		Leader           uint64
		RaftIndex        uint64 `json:"raftIndex"`
		RaftTerm         uint64 `json:"raftTerm"`
		RaftAppliedIndex uint64 `json:"raftAppliedIndex"`
		IsLearner        bool   `json:"isLearner"`
	}
}

func etcdctlStatuses(t *testing.T, eps []string) map[string]etcdctlStatus {
	t.Helper()
	var list []etcdctlStatus
	if err := json.Unmarshal([]byte(etcdtest.Etcdctl(t, eps, "endpoint", "status", "-w", "json")), &list); err != nil {
		t.Fatal(err)
	}
	byEP := map[string]etcdctlStatus{}
	for _, s := range list {
		byEP[s.Endpoint] = s
	}
	return byEP
}

// etcdctlHealth returns `etcdctl endpoint health`'s verdict per endpoint.
func etcdctlHealth(t *testing.T, eps []string) map[string]bool {
	t.Helper()
	out, _ := etcdtest.RunEtcdctl(t, eps, "endpoint", "health", "-w", "json", "--command-timeout=1s")
	var list []struct {
		Endpoint string
		Health   bool
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("etcdctl endpoint health: %v: %s", err, out)
	}
	byEP := map[string]bool{}
	for _, h := range list {
		byEP[h.Endpoint] = h.Health
	}
	return byEP
}

// agreesWithEtcdctl compares the fields etcdctl also reports. Our check
// runs between two etcdctl runs; raft indexes move (the alarm list goes
// through raft), so ours must lie between etcdctl's.
func agreesWithEtcdctl(t *testing.T, eps []string) {
	before := etcdctlStatuses(t, eps)
	r := runHealthBin(t, nil, "--endpoints", strings.Join(eps, ","), "-w", "json")
	after := etcdctlStatuses(t, eps)
	ctlHealth := etcdctlHealth(t, eps)
	doc := parseHealthJSON(t, r.stdout)
	between := func(v, a, b uint64) bool { return min(a, b) <= v && v <= max(a, b) }
	for _, e := range doc.Endpoints {
		b, a := before[e.Endpoint].Status, after[e.Endpoint].Status
		checks := []struct {
			field string
			ok    bool
			ours  any
			ctl   any
		}{
			{"member_id", e.MemberID == fmt.Sprintf("%x", b.Header.MemberID), e.MemberID, b.Header.MemberID},
			{"version", e.Version == b.Version, e.Version, b.Version},
			{"leader_id", e.LeaderID == fmt.Sprintf("%x", b.Leader) && b.Leader == a.Leader, e.LeaderID, b.Leader},
			{"is_learner", e.IsLearner == b.IsLearner, e.IsLearner, b.IsLearner},
			{"db_quota_bytes", e.DBQuotaBytes == b.DBSizeQuota, e.DBQuotaBytes, b.DBSizeQuota},
			{"db_size_bytes", between(uint64(e.DBSizeBytes), uint64(b.DBSize), uint64(a.DBSize)), e.DBSizeBytes, []int64{b.DBSize, a.DBSize}},
			{"db_size_in_use_bytes", between(uint64(e.DBSizeInUseBytes), uint64(b.DBSizeInUse), uint64(a.DBSizeInUse)), e.DBSizeInUseBytes, []int64{b.DBSizeInUse, a.DBSizeInUse}},
			{"raft_term", between(e.RaftTerm, b.RaftTerm, a.RaftTerm), e.RaftTerm, []uint64{b.RaftTerm, a.RaftTerm}},
			{"raft_index", between(e.RaftIndex, b.RaftIndex, a.RaftIndex), e.RaftIndex, []uint64{b.RaftIndex, a.RaftIndex}},
			{"raft_applied_index", between(e.RaftAppliedIndex, b.RaftAppliedIndex, a.RaftAppliedIndex), e.RaftAppliedIndex, []uint64{b.RaftAppliedIndex, a.RaftAppliedIndex}},
			{"healthy", e.Healthy == ctlHealth[e.Endpoint], e.Healthy, ctlHealth[e.Endpoint]},
		}
		for _, c := range checks {
			if !c.ok {
				t.Errorf("%s %s: ours %v, etcdctl's %v", e.Endpoint, c.field, c.ours, c.ctl)
			}
		}
	}
}

// backupFreshness checks --backups on a file:// bucket whose newest
// complete snapshot is two hours old; tags m3 and m4 have a snapshot 50
// hours old and a point-in-time log whose newest segment was written now
// (m3: the log is a backup, fresh) or 30 hours ago (m4).
func backupFreshness(t *testing.T, eps []string) {
	dir := t.TempDir()
	name := func(tag string, age time.Duration) string {
		return tag + "_" + time.Now().UTC().Add(-age).Format("2006-01-02_15-04-05") + ".db.zst"
	}
	for _, n := range []string{
		name("m0", 2*time.Hour), name("m0", 2*time.Hour) + ".json",
		name("m0", 30*time.Hour), name("m0", 30*time.Hour) + ".json",
		name("m0", time.Minute), // no manifest: incomplete
		name("m1", 50*time.Hour), name("m1", 50*time.Hour) + ".json",
		name("m3", 50*time.Hour), name("m3", 50*time.Hour) + ".json",
		name("m4", 50*time.Hour), name("m4", 50*time.Hour) + ".json",
	} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, seg := range []struct {
		tag         string
		first, last int64
		age         time.Duration
	}{{"m3", 101, 150, 40 * time.Hour}, {"m3", 151, 200, 0}, {"m4", 101, 180, 30 * time.Hour}} {
		n := pitr.SegmentName{Tag: seg.tag, First: seg.first, Last: seg.last, Ext: ".log.zst"}
		p := filepath.Join(dir, n.String())
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-seg.age)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	url := "file://" + dir
	tests := []struct {
		args []string
		want int
		in   string
	}{
		{[]string{"--max-backup-age", "3h"}, 0, ""},
		{[]string{"--max-backup-age", "1h"}, 1, "is 2h old: more than the 1h allowed"},
		{[]string{"--max-backup-age", "25h", "--tag", "m1"}, 1, "newest snapshot tagged m1"},
		{[]string{"--max-backup-age", "25h", "--tag", "m2"}, 1, "no complete snapshot tagged m2"},
		{[]string{"--max-backup-age", "1h", "--tag", "m3"}, 0, ""},
		{[]string{"--max-backup-age", "25h", "--tag", "m4"}, 1, "and its log through revision 180, is 30h old"},
	}
	for _, tt := range tests {
		r := runHealthBin(t, nil, append([]string{"--endpoints", strings.Join(eps, ","), "-w", "json", "--backups", url}, tt.args...)...)
		doc := parseHealthJSON(t, r.stdout)
		msgs, _ := json.Marshal(doc.Reasons)
		if r.code != tt.want || !strings.Contains(string(msgs), tt.in) || doc.Backup == nil {
			t.Errorf("%v: exit %d, reasons %s; want %d and %q", tt.args, r.code, msgs, tt.want, tt.in)
		}
		if tag := tt.args[len(tt.args)-1]; (tag == "m3" || tag == "m4") && doc.Backup != nil {
			if want := map[string]int64{"m3": 200, "m4": 180}[tag]; doc.Backup.Log == nil || doc.Backup.Log.LastRevision != want {
				t.Errorf("%v: the report's log is %+v, want it through revision %d", tt.args, doc.Backup.Log, want)
			}
		}
	}
	r := runHealthBin(t, nil, "--endpoints", strings.Join(eps, ","), "-w", "prometheus", "--backups", url, "--max-backup-age", "1h", "--tag", "m0")
	age := parseProm(t, r.stdout, "tag")["etcdops_backup_age_seconds"]["m0"]
	if r.code != 1 || age < 2*3600-60 || age > 2*3600+60 {
		t.Errorf("prometheus: exit %d, etcdops_backup_age_seconds %v, want 1 and about 7200", r.code, age)
	}
}
