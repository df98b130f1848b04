package health

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// WriteNagios writes the one line a Nagios plugin prints: the status and
// why, then performance data after a "|":
//
//	ETCD WARNING - member m2 (http://10.0.0.3:2379) unreachable: ... | voters_up=2;;2:;0;3 ...
func WriteNagios(w io.Writer, r *Report, v Verdict, t Thresholds) error {
	s := v.Summary
	var rtt time.Duration
	for _, e := range r.Endpoints {
		if e.Reachable {
			rtt = max(rtt, e.RTT)
		}
	}
	perf := []string{
		fmt.Sprintf("voters_up=%d;;%d:;0;%d", s.VotersUp, s.Quorum, s.Voters),
		fmt.Sprintf("learners=%d;0;;0", s.Learners),
		fmt.Sprintf("raft_index_lag=%d;%s;;0", s.RaftIndexLag, zeroEmpty(t.WarnRaftLag)),
		fmt.Sprintf("db_quota_used=%s%%;%s;%s;0;100", num(s.MaxDBPercent), num(t.WarnDBPercent), num(t.CritDBPercent)),
		fmt.Sprintf("rtt_max=%ss;;;0", num(rtt.Seconds())),
		fmt.Sprintf("alarms=%d;;0;0", len(r.Alarms)),
	}
	if s.BackupFound {
		maxAge := ""
		if t.MaxBackupAge > 0 {
			maxAge = num(t.MaxBackupAge.Seconds())
		}
		perf = append(perf, fmt.Sprintf("backup_age=%ss;%s;;0", num(s.BackupAge.Seconds()), maxAge))
	}
	line := fmt.Sprintf("ETCD %s - %s | %s\n", v.Status, strings.ReplaceAll(headline(v), "|", "/"), strings.Join(perf, " "))
	if _, err := io.WriteString(w, line); err != nil {
		return fmt.Errorf("write nagios: %w", err)
	}
	return nil
}

// num prints a float with at most three decimals and no trailing zeros.
func num(f float64) string {
	return strconv.FormatFloat(float64(int64(f*1000+0.5))/1000, 'f', -1, 64)
}

func zeroEmpty(n uint64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatUint(n, 10)
}
