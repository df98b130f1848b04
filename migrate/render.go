package migrate

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the plan for people: the cluster now, then one line
// per step with the voting members, quorum and tolerated failures after it.
func WriteTable(w io.Writer, p *Plan) error {
	fmt.Fprintf(w, "cluster %s: %s; leader %s; order %s\n", p.ClusterID, membership(p.Before), p.Leader, p.Request.Order)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tACTION\tMEMBER\tDETAIL\tVOTERS AFTER\tQUORUM\tTOLERATES")
	for i, s := range p.Steps {
		voters := strings.Join(s.Voters, ",")
		if len(s.Learners) > 0 {
			voters += " +learner " + strings.Join(s.Learners, ",")
		}
		if len(s.Stopped) > 0 {
			voters += " (" + strings.Join(s.Stopped, ",") + " stopped)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\n", i+1, s.Action, s.Member, s.detail(), voters, s.Quorum, s.Tolerates)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d steps; afterwards: %s\n", len(p.Steps), membership(p.Final()))
	return err
}

func (s Step) detail() string {
	switch s.Action {
	case AddLearner:
		return s.PeerURL
	case MoveLeader:
		if len(s.To) == 1 {
			return "to " + s.To[0]
		}
		return "to the most caught up of " + strings.Join(s.To, ",")
	case Stop:
		if slices.Contains(s.Stopped, s.Member) {
			return "drain: its clients move to other members"
		}
	}
	return "-"
}

// membership describes voters, quorum and tolerance in words.
func membership(a After) string {
	failures := "failures"
	if a.Tolerates == 1 {
		failures = "failure"
	}
	return fmt.Sprintf("%d voting members (%s), quorum %d, tolerates %d %s", len(a.Voters), strings.Join(a.Voters, ","), a.Quorum, a.Tolerates, failures)
}

// Final is the membership once every step ran.
func (p *Plan) Final() After {
	if len(p.Steps) == 0 {
		return p.Before
	}
	return p.Steps[len(p.Steps)-1].After
}

// PlanReport is a plan and how many of its steps its journal records done.
type PlanReport struct {
	*Plan
	// StateFile is the journal's path; "" for a new plan.
	StateFile string `json:"state_file,omitempty"`
	Done      int    `json:"done"`
}

// WriteJSON prints the plan and how many of its steps the journal at
// stateFile records done, as one JSON object on one line.
func WriteJSON(w io.Writer, p *Plan, stateFile string, done int) error {
	return json.NewEncoder(w).Encode(PlanReport{Plan: p, StateFile: stateFile, Done: done})
}
