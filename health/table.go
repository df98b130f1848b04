package health

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes the report for a person: one row per endpoint, the
// members not reached through any endpoint, the reasons, and the verdict
// on the last line.
func WriteTable(w io.Writer, r *Report, v Verdict) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tID\tNAME\tVERSION\tDB SIZE\tIN USE\tFREE\tQUOTA\tLEADER\tLEARNER\tTERM\tINDEX\tAPPLIED\tRTT\tHEALTH")
	for _, e := range r.Endpoints {
		if !e.Reachable {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\tunreachable: %s\n", e.Endpoint, firstError(&e))
			continue
		}
		health := "healthy"
		if !e.Healthy {
			health = "unhealthy: " + strings.Join(e.Errors, "; ")
		}
		quota := "off"
		if pct, ok := quotaPercent(e.DBSize, e.DBQuota); ok {
			quota = fmt.Sprintf("%.1f%% of %s", pct, formatBytes(e.DBQuota))
		}
		fmt.Fprintf(tw, "%s\t%x\t%s\t%s\t%s\t%s\t%.0f%%\t%s\t%t\t%t\t%d\t%d\t%d\t%s\t%s\n",
			e.Endpoint, e.MemberID, dash(e.Name), e.Version, formatBytes(e.DBSize), formatBytes(e.DBSizeInUse), freeFraction(&e)*100, quota,
			e.IsLeader, e.IsLearner, e.RaftTerm, e.RaftIndex, e.RaftAppliedIndex, formatRTT(e.RTT), health)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	var b strings.Builder
	var unchecked []string
	for _, m := range v.Summary.Members {
		if m.State == StateNotChecked {
			unchecked = append(unchecked, fmt.Sprintf("%s (%x)", dash(m.Name), m.ID))
		}
	}
	if len(unchecked) > 0 {
		fmt.Fprintf(&b, "\nnot checked (no endpoint given; try --cluster): %s\n", strings.Join(unchecked, ", "))
	}
	if bk := r.Backup; bk != nil && bk.Newest != "" {
		if l := bk.Log; l != nil {
			fmt.Fprintf(&b, "\nnewest snapshot: %s, taken %s, %s ago\n", bk.Newest, bk.Time.UTC().Format(time.RFC3339), shortDuration(r.Time.Sub(bk.Time)))
			fmt.Fprintf(&b, "log: through revision %d (%s), written %s, %s ago\n", l.Revision, l.Segment, l.Written.UTC().Format(time.RFC3339), shortDuration(r.Time.Sub(l.Written)))
		} else {
			fmt.Fprintf(&b, "\nnewest snapshot: %s, taken %s, %s ago\n", bk.Newest, bk.Time.UTC().Format(time.RFC3339), shortDuration(v.Summary.BackupAge))
		}
	}
	if len(v.Reasons) > 0 {
		b.WriteString("\n")
		for _, reason := range v.Reasons {
			fmt.Fprintf(&b, "%-8s %-9s %s\n", reason.Status, reason.Check, reason.Message)
		}
	}
	s := v.Summary
	fmt.Fprintf(&b, "\nCLUSTER %s: %d of %d voting members up (quorum %d), leader %s",
		v.Status, s.VotersUp, s.Voters, s.Quorum, memberName(v, s.Leader))
	if s.Learners > 0 {
		fmt.Fprintf(&b, ", %s", plural(s.Learners, "learner"))
	}
	if len(v.Reasons) > 0 {
		fmt.Fprintf(&b, "; %s above", plural(len(v.Reasons), "finding"))
	}
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatRTT prints a round trip to a tenth of a millisecond.
func formatRTT(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
}

// plural prints n things: 1 learner, 2 learners.
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
