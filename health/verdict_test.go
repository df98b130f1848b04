package health

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var checkTime = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// healthyReport is a three-member cluster, m0 leading, all well.
func healthyReport() *Report {
	r := &Report{Time: checkTime, Duration: 3 * time.Millisecond, ClusterID: 0xc1, AlarmsKnown: true}
	for i := range 3 {
		id := uint64(i + 1)
		url := fmt.Sprintf("http://127.0.0.1:%d", 2379+10*i)
		r.Members = append(r.Members, Member{ID: id, Name: fmt.Sprintf("m%d", i),
			PeerURLs: []string{fmt.Sprintf("http://127.0.0.1:%d", 2380+10*i)}, ClientURLs: []string{url}})
		r.Endpoints = append(r.Endpoints, Endpoint{
			Endpoint: url, Reachable: true, Healthy: true, QuorumRead: true, RTT: time.Duration(i+1) * time.Millisecond,
			MemberID: id, Name: fmt.Sprintf("m%d", i), Version: "3.6.16", StorageVersion: "3.6.0",
			DBSize: 1 << 20, DBSizeInUse: 800 << 10, DBQuota: 2 << 30, Leader: 1, IsLeader: i == 0,
			RaftTerm: 2, RaftIndex: 100 + uint64(i), RaftAppliedIndex: 100 + uint64(i),
		})
	}
	return r
}

// down makes endpoint i unreachable, as a killed member's.
func down(r *Report, i int) {
	r.Endpoints[i] = Endpoint{Endpoint: r.Endpoints[i].Endpoint,
		Errors: []string{"status: context deadline exceeded (dial tcp: connect: connection refused)"}}
}

func TestEvaluate(t *testing.T) {
	th := DefaultThresholds()
	th.MaxBackupAge = 25 * time.Hour
	tests := []struct {
		name   string
		change func(r *Report)
		th     *Thresholds
		want   Status
		// reasons are "STATUS check" of each reason, in order.
		reasons []string
		// in is text one of the messages holds.
		in string
	}{
		{name: "healthy", change: func(*Report) {}, want: OK},
		{name: "one member down", change: func(r *Report) { down(r, 2) }, want: Warning,
			reasons: []string{"WARNING members"}, in: "member m2 (http://127.0.0.1:2399) unreachable: status: context deadline exceeded"},
		{name: "leader down, new leader elected", change: func(r *Report) {
			down(r, 0)
			for i := 1; i < 3; i++ {
				r.Endpoints[i].Leader = 2
			}
			r.Endpoints[1].IsLeader = true
		}, want: Warning, reasons: []string{"WARNING members"}},
		{name: "two members down", change: func(r *Report) {
			down(r, 0)
			down(r, 1)
			r.Endpoints[2].Leader, r.Endpoints[2].QuorumRead, r.Endpoints[2].Healthy = 0, false, false
			r.AlarmsKnown = false
		}, want: Critical, reasons: []string{"CRITICAL quorum", "WARNING members", "WARNING members", "WARNING members", "CRITICAL leader"},
			in: "no quorum: no member completed a linearizable read (1 of 3 voting members reachable, quorum is 2)"},
		{name: "nothing reachable", change: func(r *Report) {
			for i := range r.Endpoints {
				down(r, i)
			}
			r.Members, r.AlarmsKnown = nil, false
		}, want: Unknown, reasons: []string{"UNKNOWN endpoints"}, in: "no endpoint answered: http://127.0.0.1:2379: status:"},
		{name: "members disagree on the leader", change: func(r *Report) {
			r.Endpoints[2].Leader, r.Endpoints[2].IsLeader = 3, true
		}, want: Critical, reasons: []string{"CRITICAL leader"}, in: "members disagree on the leader: m0, m1 follow m0; m2 follow m2"},
		{name: "no leader", change: func(r *Report) {
			for i := range r.Endpoints {
				r.Endpoints[i].Leader, r.Endpoints[i].IsLeader = 0, false
			}
		}, want: Critical, reasons: []string{"CRITICAL leader"}, in: "no leader"},
		{name: "learner", change: func(r *Report) {
			r.Members = append(r.Members, Member{ID: 4, Name: "m3", ClientURLs: []string{"http://127.0.0.1:2409"}, IsLearner: true})
			r.Endpoints = append(r.Endpoints, Endpoint{Endpoint: "http://127.0.0.1:2409", Reachable: true, Healthy: true,
				MemberID: 4, Name: "m3", Version: "3.6.16", Leader: 1, IsLearner: true, RaftIndex: 103})
		}, want: Warning, reasons: []string{"WARNING learners"}, in: "member m3 is a learner"},
		{name: "learner added, never started", change: func(r *Report) {
			r.Members = append(r.Members, Member{ID: 0xab, PeerURLs: []string{"http://127.0.0.1:2410"}, IsLearner: true})
		}, want: Warning, reasons: []string{"WARNING members", "WARNING learners"}, in: "member ab was added but never started"},
		{name: "NOSPACE", change: func(r *Report) {
			r.Alarms = []Alarm{{MemberID: 2, Type: "NOSPACE"}}
			for i := range r.Endpoints {
				r.Endpoints[i].Healthy = false
			}
		}, want: Critical, reasons: []string{"CRITICAL alarms"}, in: "NOSPACE alarm on member m1"},
		{name: "db over warn", change: func(r *Report) { r.Endpoints[1].DBSize = r.Endpoints[1].DBQuota * 85 / 100 }, want: Warning,
			reasons: []string{"WARNING db"}, in: "member m1 database is 85.0% of its quota (1.7 GiB of 2 GiB); only 800 KiB in use: defragment"},
		{name: "past the defrag rule", change: func(r *Report) { r.Endpoints[1].DBSize, r.Endpoints[1].DBSizeInUse = 500<<20, 200<<20 }, want: Warning,
			reasons: []string{"WARNING db"}, in: "member m1 database has 300 MiB free, 60% of the file (at least 100 MiB and 45%): defragment it"},
		{name: "free but under 100 MiB", change: func(r *Report) { r.Endpoints[1].DBSize, r.Endpoints[1].DBSizeInUse = 150<<20, 60<<20 }, want: OK},
		{name: "over 100 MiB free but under 45%", change: func(r *Report) { r.Endpoints[1].DBSize, r.Endpoints[1].DBSizeInUse = 500<<20, 300<<20 }, want: OK},
		{name: "db over crit", change: func(r *Report) { r.Endpoints[1].DBSize = r.Endpoints[1].DBQuota * 96 / 100 }, want: Critical,
			reasons: []string{"CRITICAL db"}},
		{name: "db at warn", change: func(r *Report) { r.Endpoints[0].DBSize, r.Endpoints[0].DBQuota = 800, 1000 }, want: Warning,
			reasons: []string{"WARNING db"}},
		{name: "quota off", change: func(r *Report) { r.Endpoints[0].DBQuota = -1 }, want: OK},
		{name: "raft lag", change: func(r *Report) { r.Endpoints[2].RaftIndex = 5000 }, want: Warning,
			reasons: []string{"WARNING raft"}, in: "member m0 is 4900 raft entries behind m2 (more than 1000)"},
		{name: "raft lag not judged", change: func(r *Report) { r.Endpoints[2].RaftIndex = 5000 },
			th: &Thresholds{WarnDBPercent: 80, CritDBPercent: 95}, want: OK},
		{name: "version skew", change: func(r *Report) { r.Endpoints[0].Version = "3.5.17" }, want: Warning,
			reasons: []string{"WARNING versions"}, in: "3.5.17 (m0), 3.6.16 (m1, m2)"},
		{name: "fresh backup", change: func(r *Report) {
			r.Backup = &Backup{URL: "file:///b", Newest: "m0_2026-11-21_04-00-00.db", Time: checkTime.Add(-8 * time.Hour)}
		}, want: OK},
		{name: "stale backup", change: func(r *Report) {
			r.Backup = &Backup{URL: "file:///b", Tag: "m0", Newest: "m0_2026-11-20_04-00-00.db", Time: checkTime.Add(-32 * time.Hour)}
		}, want: Warning, reasons: []string{"WARNING backups"},
			in: "newest snapshot tagged m0, m0_2026-11-20_04-00-00.db, is 32h old: more than the 25h allowed"},
		{name: "no backup", change: func(r *Report) { r.Backup = &Backup{URL: "file:///b"} }, want: Warning,
			reasons: []string{"WARNING backups"}, in: "no complete snapshot (with its manifest) in file:///b"},
		{name: "backups not listed, member down", change: func(r *Report) {
			down(r, 1)
			r.Backup = &Backup{URL: "s3://b", Error: "list: access denied"}
		}, want: Unknown, reasons: []string{"WARNING members", "UNKNOWN backups"}},
		{name: "critical outranks unknown", change: func(r *Report) {
			r.Alarms = []Alarm{{MemberID: 1, Type: "CORRUPT"}}
			r.Backup = &Backup{URL: "s3://b", Error: "list: access denied"}
		}, want: Critical, reasons: []string{"CRITICAL alarms", "UNKNOWN backups"}},
		{name: "member not among the endpoints", change: func(r *Report) { r.Endpoints = r.Endpoints[:1] }, want: OK},
		{name: "member down, not among the endpoints, quorum short", change: func(r *Report) {
			down(r, 1)
			r.Endpoints = r.Endpoints[:2]
		}, want: Warning, reasons: []string{"WARNING members"}},
		{name: "endpoint of no member", change: func(r *Report) {
			r.Endpoints = append(r.Endpoints, Endpoint{Endpoint: "127.0.0.1:1", Errors: []string{"status: refused"}})
		}, want: Warning, reasons: []string{"WARNING endpoints"}, in: "127.0.0.1:1 unreachable: status: refused"},
		{name: "discovery failed", change: func(r *Report) { r.DiscoveryError = "member list from a: refused" }, want: Warning,
			reasons: []string{"WARNING endpoints"}},
		{name: "endpoint by host:port", change: func(r *Report) {
			down(r, 2)
			r.Endpoints[2].Endpoint = "127.0.0.1:2399"
		}, want: Warning, reasons: []string{"WARNING members"}, in: "member m2 (127.0.0.1:2399) unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := healthyReport()
			tt.change(r)
			use := th
			if tt.th != nil {
				use = *tt.th
			}
			v := Evaluate(r, use)
			var got []string
			var msgs []string
			for _, reason := range v.Reasons {
				got = append(got, reason.Status.String()+" "+reason.Check)
				msgs = append(msgs, reason.Message)
			}
			if v.Status != tt.want || strings.Join(got, ",") != strings.Join(tt.reasons, ",") {
				t.Errorf("Evaluate = %v %q, want %v %q\nmessages: %q", v.Status, got, tt.want, tt.reasons, msgs)
			}
			if tt.in != "" && !strings.Contains(strings.Join(msgs, "\n"), tt.in) {
				t.Errorf("no message holds %q: %q", tt.in, msgs)
			}
		})
	}
}

func TestEvaluateSummary(t *testing.T) {
	r := healthyReport()
	down(r, 2)
	r.Backup = &Backup{Newest: "m0_2026-11-21_06-00-00.db", Time: checkTime.Add(-6 * time.Hour)}
	s := Evaluate(r, DefaultThresholds()).Summary
	if s.Voters != 3 || s.Quorum != 2 || s.VotersUp != 2 || s.Learners != 0 || s.Leader != 1 || s.RaftIndexLag != 1 {
		t.Errorf("summary %+v", s)
	}
	if !s.BackupFound || s.BackupAge != 6*time.Hour {
		t.Errorf("backup age %v %v, want 6h", s.BackupFound, s.BackupAge)
	}
	var states []string
	for _, m := range s.Members {
		states = append(states, m.State)
	}
	if got := strings.Join(states, ","); got != "healthy,healthy,unreachable" {
		t.Errorf("states %s", got)
	}
}

func TestThresholdsValidate(t *testing.T) {
	tests := []struct {
		th   Thresholds
		want string
	}{
		{DefaultThresholds(), ""},
		{Thresholds{WarnDBPercent: 0, CritDBPercent: 100}, ""},
		{Thresholds{WarnDBPercent: 90, CritDBPercent: 90}, ""},
		{Thresholds{WarnDBPercent: -1, CritDBPercent: 95}, "warn db percent -1: expected a percentage from 0 to 100"},
		{Thresholds{WarnDBPercent: 80, CritDBPercent: 101}, "crit db percent 101"},
		{Thresholds{WarnDBPercent: 96, CritDBPercent: 95}, "warn db percent 96: expected at most crit db percent 95"},
		{Thresholds{WarnDBPercent: 80, CritDBPercent: 95, MaxBackupAge: -time.Hour}, "max backup age -1h0m0s"},
	}
	for _, tt := range tests {
		err := tt.th.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.th, err, tt.want)
		}
	}
}

func TestFormatting(t *testing.T) {
	for in, want := range map[int64]string{0: "0 B", 1023: "1023 B", 64 << 10: "64 KiB", 1536: "1.5 KiB", 2 << 30: "2 GiB"} {
		if got := formatBytes(in); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[time.Duration]string{26 * time.Hour: "26h", 90 * time.Minute: "1h30m", 45 * time.Second: "45s",
		time.Hour + time.Second: "1h", time.Hour + 31*time.Second: "1h1m", 59*time.Minute + 1500*time.Millisecond: "59m2s"} {
		if got := shortDuration(in); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", in, got, want)
		}
	}
}
