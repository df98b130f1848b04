package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/etcdops/etcdops/internal/atomicfile"
)

// Journal states.
const (
	StateRunning = "running"
	StateFailed  = "failed"
	StateDone    = "done"
	StateAborted = "aborted"
)

// Journal records a migration: its plan and how far it got. It is written
// atomically before and after every change, so that a rerun resumes.
type Journal struct {
	Version   int    `json:"version"`
	ClusterID string `json:"cluster_id"`
	Plan      *Plan  `json:"plan"`
	// Old are the members as they were when the plan was made.
	Old []JournalMember `json:"old_members"`
	// New are the members the plan adds, with their files.
	New []NewMember `json:"new_members"`
	// Done is how many steps completed; Current the step under way.
	Done    int    `json:"done"`
	Current int    `json:"current,omitempty"`
	State   string `json:"state"`
	// Failure says what went wrong, for a failed migration.
	Failure string    `json:"failure,omitempty"`
	Events  []Event   `json:"events"`
	Updated time.Time `json:"updated"`
}

// JournalMember is a member of the cluster as the journal keeps it.
type JournalMember struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
}

// NewMember is a member the migration adds: where its files go, and its
// member ID once added.
type NewMember struct {
	Name       string `json:"name"`
	ID         string `json:"id,omitempty"`
	PeerURL    string `json:"peer_url"`
	ClientURL  string `json:"client_url"`
	DataDir    string `json:"data_dir"`
	ConfigFile string `json:"config_file"`
	EnvFile    string `json:"env_file"`
	// InitialCluster is what its configuration says, once written.
	InitialCluster string `json:"initial_cluster,omitempty"`
	// StaleDataDir is its data dir after an attempt that was removed again:
	// it may hold that member's WAL, on which etcd refuses to start. The
	// next start moves it aside first (on this host) or has it moved.
	StaleDataDir string `json:"stale_data_dir,omitempty"`
}

const journalVersion = 1

// StateError is a journal that does not belong to this migration.
type StateError struct{ Path, Reason string }

func (e *StateError) Error() string { return fmt.Sprintf("state file %s: %s", e.Path, e.Reason) }

// loadJournal reads the journal at path; it returns nil when there is none.
func loadJournal(path string) (*Journal, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var j Journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, &StateError{Path: path, Reason: "not a migration journal: " + err.Error()}
	}
	if j.Version != journalVersion || j.Plan == nil {
		return nil, &StateError{Path: path, Reason: fmt.Sprintf("not a migration journal of version %d", journalVersion)}
	}
	return &j, nil
}

// matches refuses a journal of another cluster or another request.
func (j *Journal) matches(path, clusterID string, r Request) error {
	if j.ClusterID != clusterID {
		return &StateError{Path: path, Reason: fmt.Sprintf("records a migration of cluster %s, not of this cluster %s", j.ClusterID, clusterID)}
	}
	if !sameRequest(j.Plan.Request, r) {
		return &StateError{Path: path, Reason: "records another migration of this cluster (other members to add or remove, or another order); " +
			"finish it, abort it, or use another state file"}
	}
	return nil
}

// finished tells whether the journal records a finished migration of r's
// members to add and remove, and members is its outcome: every voter the
// plan ends with, no other member. The order and the drain say how the steps
// ran; they are no reason to refuse a rerun that finds nothing to do.
func (j *Journal) finished(r Request, members []Member) bool {
	if j.State != StateDone {
		return false
	}
	if !sameChanges(j.Plan.Request, r) {
		return false
	}
	var names []string
	for _, m := range members {
		if m.IsLearner {
			return false
		}
		names = append(names, m.Name)
	}
	want := slices.Clone(j.Plan.Final().Voters)
	slices.Sort(names)
	slices.Sort(want)
	return slices.Equal(names, want)
}

// sameChanges tells whether a and b add and remove the same members,
// whatever their order and drain.
func sameChanges(a, b Request) bool {
	a.Order, a.Drain = b.Order, b.Drain
	return sameRequest(a, b)
}

func sameRequest(a, b Request) bool {
	norm := func(r Request) Request {
		if r.Order == "" {
			r.Order = OneByOne
		}
		r.Removes = slices.Clone(r.Removes)
		slices.Sort(r.Removes)
		if len(r.Adds) == 0 {
			r.Adds = nil
		}
		if len(r.Removes) == 0 {
			r.Removes = nil
		}
		return r
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// save writes the journal atomically.
func (j *Journal) save(path string) error {
	j.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	return nil
}

func (j *Journal) newMember(name string) *NewMember {
	for i := range j.New {
		if j.New[i].Name == name {
			return &j.New[i]
		}
	}
	return nil
}

func (j *Journal) oldMember(name string) *JournalMember {
	for i := range j.Old {
		if j.Old[i].Name == name {
			return &j.Old[i]
		}
	}
	return nil
}
