package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/etcdops/etcdops/restore"
)

// Options say how Run carries out a migration.
type Options struct {
	Connection Connection
	Request    Request
	// New are the settings and files of the members to add (restore.Members
	// of the adds).
	New []restore.Member
	// Files names the data dir and configuration files of a member, for
	// the placeholders of StopCmd and the final report of the old members.
	Files func(name string) (dataDir, configFile, envFile string)
	// StartCmd and StopCmd are command templates (see Placeholders). Without
	// StartCmd, Run prints the start command to Operator and waits.
	StartCmd, StopCmd string
	// StateFile is the journal; empty means migrate-<cluster id>.json in
	// the working directory.
	StateFile string
	// StepTimeout bounds each step.
	StepTimeout time.Duration
	// MaxLag is how many entries a new member's applied index may be behind
	// the leader's for it to count as caught up.
	MaxLag uint64
	// Events receives an event per step; nil drops them.
	Events func(Event)
	// Progress, when set, shows each wait that lasts on one line (a
	// terminal); without it such waits are logged.
	Progress io.Writer
	// Operator receives what the operator must do by hand.
	Operator io.Writer
	// poll is how often waits check again; 0 means 200ms. Tests shorten it.
	poll time.Duration
	// dial, when set, replaces Connection.Dial for the changes: tests wrap
	// it to lose replies.
	dial Dialer
}

// Event is one step done (or found done) or failed, for people and scripts.
type Event struct {
	Time   time.Time `json:"time"`
	Step   int       `json:"step"`
	Of     int       `json:"of"`
	Action Action    `json:"action"`
	Member string    `json:"member"`
	// Status is done, already done, or failed.
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
	After
}

// Event statuses.
const (
	EventDone        = "done"
	EventAlreadyDone = "already done"
	EventFailed      = "failed"
)

// Result is the cluster after Run.
type Result struct {
	StateFile   string `json:"state_file"`
	NothingToDo bool   `json:"nothing_to_do,omitempty"`
	// Members is the member list at the end.
	Members []Member `json:"members"`
	// Endpoints are the voting members' client URLs, for clients.
	Endpoints []string `json:"endpoints"`
	// OldDataDirs are the data dirs the removed members leave behind.
	OldDataDirs map[string]string `json:"old_data_dirs,omitempty"`
}

type runner struct {
	o         Options
	lg        *zap.Logger
	j         *Journal
	path      string
	endpoints []string
	ours      []string // peer URLs of the new members
	// stopped are the client URLs of the old member drained for the step
	// that runs: asked directly, they would only time out.
	stopped []string
}

// Run plans the migration of o.Request, or resumes the one its journal
// records, and carries it out. Input errors are *InputError and
// *StateError; nothing has changed then.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.poll <= 0 {
		o.poll = 200 * time.Millisecond
	}
	r, facts, err := open(ctx, o)
	if err != nil {
		return nil, err
	}
	if r.j != nil && r.j.State == StateDone {
		return &Result{StateFile: r.path, NothingToDo: true, Members: facts.Members, Endpoints: voterEndpoints(facts.Members),
			OldDataDirs: r.oldDataDirs()}, nil
	}
	if r.j != nil {
		r.lg.Info("resuming migration", zap.String("state-file", r.path), zap.Int("done", r.j.Done), zap.Int("steps", len(r.j.Plan.Steps)))
	} else {
		p, err := NewPlan(facts, o.Request)
		if err != nil {
			return nil, err
		}
		r.j = newJournal(fmt.Sprintf("%x", facts.ClusterID), p, facts, o)
	}
	r.j.State, r.j.Failure = StateRunning, ""
	if err := r.j.save(r.path); err != nil {
		return nil, err
	}
	for i := r.j.Done; i < len(r.j.Plan.Steps); i++ {
		if err := r.runStep(ctx, i); err != nil {
			return nil, err
		}
	}
	r.j.State, r.j.Current = StateDone, 0
	if err := r.j.save(r.path); err != nil {
		return nil, err
	}
	members, err := r.list(ctx)
	if err != nil {
		return nil, err
	}
	return &Result{StateFile: r.path, Members: members, Endpoints: voterEndpoints(members), OldDataDirs: r.oldDataDirs()}, nil
}

// journalEndpoints are the client URLs of the new voters that the journal
// of this request knows (the state file, or the default ones in the working
// directory): a rerun after the old members are gone reaches the cluster
// through the new.
func journalEndpoints(o Options) []string {
	files := []string{o.StateFile}
	if o.StateFile == "" {
		files, _ = filepath.Glob("migrate-*.json")
	}
	var eps []string
	for _, f := range files {
		j, err := loadJournal(f)
		if err != nil || j == nil || !sameChanges(j.Plan.Request, o.Request) {
			continue
		}
		for i, st := range j.Plan.Steps {
			// Voters only: learners answer no member list.
			if m := j.newMember(st.Member); st.Action == Promote && i < j.Done && m != nil && !slices.Contains(eps, m.ClientURL) {
				eps = append(eps, m.ClientURL)
			}
		}
	}
	return eps
}

// open reads the cluster and the journal of o.Request, if there is one;
// a journal of another migration, or an aborted one, is refused.
func open(ctx context.Context, o Options) (*runner, Facts, error) {
	r := &runner{o: o, lg: o.Connection.logger(), endpoints: o.Connection.Client.Endpoints}
	for _, a := range o.Request.Adds {
		r.ours = append(r.ours, a.PeerURL)
	}
	r.endpoints = append(slices.Clone(r.endpoints), journalEndpoints(o)...)
	facts, _, err := Gather(ctx, o.Connection, r.endpoints, r.ours)
	if err != nil {
		return nil, facts, err
	}
	r.useMembers(facts.Members)
	r.path = o.StateFile
	if r.path == "" {
		r.path = DefaultStateFile(facts.ClusterID)
	}
	if r.j, err = loadJournal(r.path); err != nil || r.j == nil {
		return r, facts, err
	}
	if err := r.j.matches(r.path, fmt.Sprintf("%x", facts.ClusterID), o.Request); err != nil && !r.j.finished(o.Request, facts.Members) {
		return nil, facts, err
	}
	if r.j.State == StateAborted {
		return nil, facts, &StateError{Path: r.path, Reason: "records an aborted migration; remove the file to plan it again"}
	}
	for _, m := range facts.Members {
		if m.IsLearner && !slices.ContainsFunc(m.PeerURLs, func(u string) bool { return slices.Contains(r.ours, u) }) {
			return nil, facts, inputErr("cluster", "", "member %s is a learner that this migration did not add: promote or remove it first", display(m))
		}
	}
	return r, facts, nil
}

// Preview is the plan of o.Request and how many of its steps are done: the
// journal's, when there is one, else a new plan of the cluster as it is.
// It changes nothing.
func Preview(ctx context.Context, o Options) (p *Plan, done int, stateFile string, err error) {
	r, facts, err := open(ctx, o)
	if err != nil {
		return nil, 0, "", err
	}
	if r.j != nil {
		return r.j.Plan, r.j.Done, r.path, nil
	}
	p, err = NewPlan(facts, o.Request)
	return p, 0, "", err
}

// DefaultStateFile is the journal of a migration of cluster id when
// --state-file is not given.
func DefaultStateFile(clusterID uint64) string {
	return filepath.Join(".", fmt.Sprintf("migrate-%x.json", clusterID))
}

func newJournal(clusterID string, p *Plan, f Facts, o Options) *Journal {
	j := &Journal{Version: journalVersion, ClusterID: clusterID, Plan: p}
	for _, m := range f.Members {
		j.Old = append(j.Old, JournalMember{ID: hexID(m.ID), Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs})
	}
	for _, a := range p.Request.Adds {
		nm := NewMember{Name: a.Name, PeerURL: a.PeerURL}
		for _, m := range o.New {
			if m.Name == a.Name {
				nm.ClientURL, nm.DataDir, nm.ConfigFile, nm.EnvFile = m.ClientURLs[0], m.DataDir, m.ConfigFile, m.EnvFile
			}
		}
		j.New = append(j.New, nm)
	}
	return j
}

// runStep checks the cluster, runs step i and records it.
func (r *runner) runStep(ctx context.Context, i int) error {
	s := r.j.Plan.Steps[i]
	ctx, cancel := context.WithTimeout(ctx, r.o.StepTimeout)
	defer cancel()
	if err := r.waitHealthy(ctx, i); err != nil {
		return err
	}
	r.j.Current = i + 1
	if err := r.j.save(r.path); err != nil {
		return err
	}
	r.lg.Info("step", zap.Int("step", i+1), zap.String("action", string(s.Action)), zap.String("member", s.Member))
	already, detail, err := r.do(ctx, s)
	ev := Event{Time: time.Now().UTC(), Step: i + 1, Of: len(r.j.Plan.Steps), Action: s.Action, Member: s.Member, Status: EventDone, Detail: detail, After: s.After}
	if already {
		ev.Status = EventAlreadyDone
	}
	if err != nil {
		ev.Status, ev.Detail = EventFailed, err.Error()
		r.j.State, r.j.Failure = StateFailed, fmt.Sprintf("step %d (%s %s): %v", i+1, s.Action, s.Member, err)
		var nme *NewMemberError
		if errors.As(err, &nme) && nme.RemovedAgain {
			r.j.Done = r.addStep(s.Member) // a rerun adds it again
		}
		r.record(ev)
		if serr := r.j.save(r.path); serr != nil {
			r.lg.Error("write journal", zap.Error(serr))
		}
		return fmt.Errorf("step %d of %d, %s %s: %w", i+1, len(r.j.Plan.Steps), s.Action, s.Member, err)
	}
	r.j.Done = i + 1
	r.record(ev)
	return r.j.save(r.path)
}

func (r *runner) record(ev Event) {
	r.j.Events = append(r.j.Events, ev)
	if r.o.Events != nil {
		r.o.Events(ev)
	}
}

// addStep is the index of the add-learner step of new member name.
func (r *runner) addStep(name string) int {
	for i, s := range r.j.Plan.Steps {
		if s.Action == AddLearner && s.Member == name {
			return i
		}
	}
	return r.j.Done
}

// do runs one step; already says that it had been done before.
func (r *runner) do(ctx context.Context, s Step) (already bool, detail string, err error) {
	switch s.Action {
	case AddLearner:
		return r.addLearner(ctx, r.j.newMember(s.Member))
	case Start:
		return r.start(ctx, r.j.newMember(s.Member))
	case WaitCaughtUp:
		return r.waitCaughtUp(ctx, r.j.newMember(s.Member))
	case Promote:
		return r.promote(ctx, r.j.newMember(s.Member))
	case MoveLeader:
		return r.moveLeader(ctx, s)
	case Remove:
		return r.remove(ctx, s.Member)
	case Stop:
		return r.stop(ctx, s.Member)
	}
	return false, "", fmt.Errorf("unknown action %q", s.Action)
}

func (r *runner) sleep(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.o.poll):
		return nil
	}
}

func (r *runner) oldDataDirs() map[string]string {
	if r.o.Files == nil {
		return nil
	}
	out := map[string]string{}
	for _, name := range r.j.Plan.Request.Removes {
		out[name], _, _ = r.o.Files(name)
	}
	return out
}
