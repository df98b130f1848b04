package maintenance

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/etcdops/etcdops/defrag"
)

// WritePlan prints the decision, one member a line, in the order of the run.
func WritePlan(w io.Writer, plan []defrag.Decision) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tROLE\tDB SIZE\tIN USE\tFREE\tQUOTA\tDEFRAG\tREASON")
	for _, d := range plan {
		if d.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\tno\t%s\n", d.Name, role(d.MemberStatus), d.Reason)
			continue
		}
		quota := "off"
		switch {
		case d.QuotaUsed > 0 && !d.QuotaFromStatus:
			quota = ib(d.QuotaUsed) + " (assumed)"
		case d.QuotaUsed > 0:
			quota = ib(d.QuotaUsed)
		case d.Quota == 0:
			quota = "unknown"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s (%.0f%%)\t%s\t%s\t%s\n", d.Name, role(d.MemberStatus), ib(d.DBSize), ib(d.DBSizeInUse),
			ib(d.Free), d.FreeFraction*100, quota, yesNo(d.Defrag), d.Reason)
	}
	return tw.Flush()
}

// WriteSummary prints what the run did to each member and in total.
func WriteSummary(w io.Writer, res *Result) error {
	if res.Compaction != "" {
		fmt.Fprintf(w, "compaction: %s\n", res.Compaction)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tOUTCOME\tBEFORE\tAFTER\tRECLAIMED\tTIME")
	for _, m := range res.Members {
		after, took := "-", "-"
		if m.Outcome == OutcomeDefragmented {
			after, took = ib(m.After), (time.Duration(m.Seconds * float64(time.Second))).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Outcome, ib(m.Before), after, ib(m.Reclaimed), took)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.Disarm != "" {
		fmt.Fprintf(w, "alarms: %s\n", res.Disarm)
	}
	_, err := fmt.Fprintf(w, "reclaimed %s in total in %s\n", ib(res.Reclaimed), time.Duration(res.Seconds*float64(time.Second)).Round(time.Millisecond))
	return err
}

func role(m defrag.MemberStatus) string {
	switch {
	case m.IsLeader:
		return "leader"
	case m.IsLearner:
		return "learner"
	case m.Error != "":
		return "?"
	}
	return "follower"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func ib(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }
