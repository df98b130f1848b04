package migrate

import (
	"context"
	"fmt"
	"time"
)

// AbortResult says what Abort removed.
type AbortResult struct {
	StateFile string `json:"state_file"`
	// Removed are the learners removed; Voting the members this migration
	// added that vote already, which stay.
	Removed []string `json:"removed"`
	Voting  []string `json:"voting,omitempty"`
	// DataDirs are the data dirs of the learners removed, by name: they
	// may hold the WAL of a removed member, on which etcd refuses to start,
	// and must be moved aside before the member is added again.
	DataDirs map[string]string `json:"data_dirs,omitempty"`
}

// Abort removes the learners that the migration of the journal at
// o.StateFile added, and marks it aborted. The voting members it added and
// the members it removed stay as they are.
func Abort(ctx context.Context, o Options) (*AbortResult, error) {
	if o.poll <= 0 {
		o.poll = 500 * time.Millisecond
	}
	r := &runner{o: o, lg: o.Connection.logger(), endpoints: o.Connection.Client.Endpoints, path: o.StateFile}
	j, err := loadJournal(o.StateFile)
	if err != nil {
		return nil, err
	}
	if j == nil {
		return nil, &StateError{Path: o.StateFile, Reason: "no such file: nothing to abort"}
	}
	r.j = j
	if j.State == StateDone {
		return &AbortResult{StateFile: o.StateFile}, nil
	}
	for _, nm := range j.New {
		r.ours = append(r.ours, nm.PeerURL)
	}
	ctx, cancel := context.WithTimeout(ctx, o.StepTimeout)
	defer cancel()
	facts, _, err := Gather(ctx, o.Connection, r.endpoints, r.ours)
	if err != nil {
		return nil, err
	}
	if id := fmt.Sprintf("%x", facts.ClusterID); id != j.ClusterID {
		return nil, &StateError{Path: o.StateFile, Reason: fmt.Sprintf("records a migration of cluster %s, not of this cluster %s", j.ClusterID, id)}
	}
	r.useMembers(facts.Members)
	res := &AbortResult{StateFile: o.StateFile}
	for _, nm := range j.New {
		// A learner the journal has no ID for yet may still have been added: the peer URL decides.
		m := byPeerURL(facts.Members, nm.PeerURL)
		switch {
		case m == nil:
		case !m.IsLearner:
			res.Voting = append(res.Voting, nm.Name)
		default:
			if err := r.removeLearner(ctx, m.ID); err != nil {
				return res, fmt.Errorf("remove learner %s: %w", nm.Name, err)
			}
			res.Removed = append(res.Removed, nm.Name)
			if nm.DataDir != "" {
				if res.DataDirs == nil {
					res.DataDirs = map[string]string{}
				}
				res.DataDirs[nm.Name] = nm.DataDir
			}
		}
	}
	j.State, j.Failure = StateAborted, "aborted"
	return res, j.save(o.StateFile)
}
