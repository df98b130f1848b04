// Package migrate moves a live etcd cluster onto new members: NewPlan is a pure function of the
// membership and the request, Run carries it out step by step, recorded in a journal.
package migrate

import (
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/client/pkg/v3/types"
)

// Order says how adds and removes interleave.
type Order string

// Orders of a Request.
const (
	// OneByOne replaces one member at a time: add one, then remove one.
	OneByOne Order = "one-by-one"
	// AddFirst adds every new member, then removes the old ones.
	AddFirst Order = "add-first"
)

// Add is a new member: its name and peer URL.
type Add struct {
	Name    string `json:"name"`
	PeerURL string `json:"peer_url"`
}

// Request is what the operator asks for.
type Request struct {
	Adds    []Add    `json:"adds,omitempty"`
	Removes []string `json:"removes,omitempty"`
	Order   Order    `json:"order"`
	// Drain stops each member to be removed before its removal, so that its
	// clients move to other members first: a write in flight on a member
	// that is removed while it runs fails ("raft: stopped"), one on a member
	// stopped gracefully completes. It needs a stop command.
	Drain bool `json:"drain,omitempty"`
}

// Member is one entry of the member list, with its etcd version when known.
type Member struct {
	ID         uint64   `json:"-"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls,omitempty"`
	IsLearner  bool     `json:"is_learner,omitempty"`
	Version    string   `json:"version,omitempty"`
}

// Facts are what the plan is made from: the cluster as a linearizable
// member list and a health check saw it.
type Facts struct {
	ClusterID uint64
	Members   []Member
	// Leader is the leader's member ID, 0 when unknown.
	Leader uint64
	// Unhealthy says why the cluster may not be changed now, "" when it may.
	Unhealthy string
}

// Action is what one step does.
type Action string

// The actions of a plan, in the order one member goes through them.
const (
	AddLearner   Action = "add-learner"
	Start        Action = "start"
	WaitCaughtUp Action = "wait-caught-up"
	Promote      Action = "promote"
	MoveLeader   Action = "move-leader"
	Remove       Action = "remove"
	Stop         Action = "stop"
)

// Step is one change and the cluster after it.
type Step struct {
	Action Action `json:"action"`
	Member string `json:"member"`
	// PeerURL is the new member's, for the steps of an add.
	PeerURL string `json:"peer_url,omitempty"`
	// To are the members leadership may move to, for move-leader: the
	// most caught up of them is chosen when the step runs.
	To []string `json:"to,omitempty"`
	After
}

// After is the membership after a step.
type After struct {
	Voters   []string `json:"voters"`
	Learners []string `json:"learners,omitempty"`
	// Stopped are voters stopped to drain them, not yet removed.
	Stopped []string `json:"stopped,omitempty"`
	// Quorum is how many voters must be up; Tolerates how many more of
	// those up may fail.
	Quorum    int `json:"quorum"`
	Tolerates int `json:"tolerates"`
}

func after(voters, learners, stopped []string) After {
	quorum := len(voters)/2 + 1
	return After{Voters: slices.Clone(voters), Learners: slices.Clone(learners), Stopped: slices.Clone(stopped),
		Quorum: quorum, Tolerates: len(voters) - len(stopped) - quorum}
}

// Plan is an ordered list of steps that moves the cluster to the request.
type Plan struct {
	ClusterID string  `json:"cluster_id"`
	Request   Request `json:"request"`
	// Leader is the leader's name when the plan was made.
	Leader string `json:"leader"`
	Before After  `json:"before"`
	Steps  []Step `json:"steps"`
}

// InputError is a request that cannot be planned: Input names what was
// asked (add, remove, order, or cluster for the cluster's own state),
// Value the offending value, Reason what was expected.
type InputError struct {
	Input, Value, Reason string
}

func (e *InputError) Error() string {
	if e.Value == "" {
		return e.Input + ": " + e.Reason
	}
	return fmt.Sprintf("%s %q: %s", e.Input, e.Value, e.Reason)
}

func inputErr(input, value, format string, args ...any) error {
	return &InputError{Input: input, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// ParseAdd parses NAME=PEERURL.
func ParseAdd(s string) (Add, error) {
	name, raw, ok := strings.Cut(s, "=")
	if !ok || name == "" || raw == "" {
		return Add{}, inputErr("add", s, "expected NAME=PEERURL, like A=https://10.1.0.1:2380")
	}
	if err := checkName(name); err != nil {
		return Add{}, inputErr("add", s, "%v", err)
	}
	urls, err := types.NewURLs([]string{raw})
	if err != nil {
		return Add{}, inputErr("add", s, "expected a peer URL like https://10.1.0.1:2380: %v", err)
	}
	return Add{Name: name, PeerURL: urls[0].String()}, nil
}

func checkName(name string) error {
	if strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }) || strings.ContainsAny(name, `/\{}=,`) {
		return fmt.Errorf("member name %q: expected no spaces, slashes, braces, '=' or ','", name)
	}
	return nil
}

// NewPlan orders the steps of r on the cluster of f, or says why it may
// not be done. Its errors are *InputError.
func NewPlan(f Facts, r Request) (*Plan, error) {
	if r.Order == "" {
		r.Order = OneByOne
	}
	if r.Order != OneByOne && r.Order != AddFirst {
		return nil, inputErr("order", string(r.Order), "expected %s or %s", OneByOne, AddFirst)
	}
	if len(r.Adds) == 0 && len(r.Removes) == 0 {
		return nil, inputErr("add", "", "expected at least one member to add or remove")
	}
	if f.Unhealthy != "" {
		return nil, inputErr("cluster", "", "not healthy, nothing changed: %s", f.Unhealthy)
	}
	if err := checkVersions(f.Members); err != nil {
		return nil, err
	}
	byName := map[string]Member{}
	var voters []string
	leader := ""
	for _, m := range f.Members {
		if m.IsLearner {
			return nil, inputErr("cluster", "", "member %s is a learner that this migration did not add: promote or remove it first", display(m))
		}
		byName[m.Name] = m
		voters = append(voters, m.Name)
		if m.ID == f.Leader {
			leader = m.Name
		}
	}
	if err := checkAdds(f.Members, r.Adds); err != nil {
		return nil, err
	}
	removes, err := orderRemoves(byName, leader, r.Removes)
	if err != nil {
		return nil, err
	}
	if len(removes) == len(voters) && len(r.Adds) == 0 {
		return nil, inputErr("remove", strings.Join(r.Removes, ","), "removes every member; a cluster needs at least one")
	}
	p := &Plan{ClusterID: fmt.Sprintf("%x", f.ClusterID), Request: r, Leader: leader, Before: after(voters, nil, nil)}
	b := builder{p: p, voters: voters, leader: leader, hadTolerance: p.Before.Tolerates >= 1}
	switch r.Order {
	case OneByOne:
		for i := 0; i < max(len(r.Adds), len(removes)); i++ {
			if i < len(r.Adds) {
				b.add(r.Adds[i])
			}
			if i < len(removes) {
				b.remove(removes[i])
			}
		}
	case AddFirst:
		for _, a := range r.Adds {
			b.add(a)
		}
		for _, name := range removes {
			b.remove(name)
		}
	}
	if b.err != nil {
		return nil, b.err
	}
	return p, nil
}

// checkAdds refuses duplicate names and peer URLs, and those in use.
func checkAdds(members []Member, adds []Add) error {
	names, urls := map[string]string{}, map[string]string{}
	for _, m := range members {
		if m.Name != "" {
			names[m.Name] = "the name of current member " + m.Name
		}
		for _, u := range m.PeerURLs {
			urls[u] = "the peer URL of current member " + display(m)
		}
	}
	for _, a := range adds {
		v := a.Name + "=" + a.PeerURL
		if why, dup := names[a.Name]; dup {
			return inputErr("add", v, "name %s is already %s", a.Name, why)
		}
		if why, dup := urls[a.PeerURL]; dup {
			return inputErr("add", v, "peer URL %s is already %s", a.PeerURL, why)
		}
		names[a.Name] = "given to another member to add"
		urls[a.PeerURL] = "given to another member to add"
	}
	return nil
}

// orderRemoves checks the names and puts followers first, the leader last.
func orderRemoves(byName map[string]Member, leader string, removes []string) ([]string, error) {
	var out []string
	leaderToo := false
	for _, name := range removes {
		if _, ok := byName[name]; !ok {
			return nil, inputErr("remove", name, "not a member of the cluster (members: %s)", strings.Join(sortedKeys(byName), ", "))
		}
		if slices.Contains(out, name) || (name == leader && leaderToo) {
			return nil, inputErr("remove", name, "given twice")
		}
		if name == leader {
			leaderToo = true
			continue
		}
		out = append(out, name)
	}
	if leaderToo {
		out = append(out, leader)
	}
	return out, nil
}

// builder appends steps and checks each resulting membership.
type builder struct {
	p            *Plan
	voters       []string
	learners     []string
	stopped      []string // drained voters not yet removed
	added        []string // new voters so far
	leader       string
	hadTolerance bool
	err          error
}

func (b *builder) step(s Step) {
	if b.err != nil {
		return
	}
	s.After = after(b.voters, b.learners, b.stopped)
	if len(b.voters) == 0 {
		b.err = inputErr("remove", s.Member, "the cluster would have no voting member left")
		return
	}
	// The membership must keep tolerating a failure where it did; a drained
	// voter is down only until its removal, the next step (see remove).
	if b.hadTolerance && (len(b.voters)-1)/2 < 1 {
		b.err = inputErr("remove", s.Member, "after step %d (%s %s) the cluster would have %d voting members and tolerate no failure; "+
			"it tolerates %d now: add members first or remove fewer", len(b.p.Steps)+1, s.Action, s.Member, len(b.voters), b.p.Before.Tolerates)
		return
	}
	b.p.Steps = append(b.p.Steps, s)
}

func (b *builder) add(a Add) {
	b.learners = append(b.learners, a.Name)
	b.step(Step{Action: AddLearner, Member: a.Name, PeerURL: a.PeerURL})
	b.step(Step{Action: Start, Member: a.Name, PeerURL: a.PeerURL})
	b.step(Step{Action: WaitCaughtUp, Member: a.Name, PeerURL: a.PeerURL})
	b.learners = slices.DeleteFunc(b.learners, func(n string) bool { return n == a.Name })
	b.voters = append(b.voters, a.Name)
	b.added = append(b.added, a.Name)
	b.step(Step{Action: Promote, Member: a.Name, PeerURL: a.PeerURL})
}

func (b *builder) remove(name string) {
	if name == b.leader {
		to := b.added
		if len(to) == 0 {
			to = slices.DeleteFunc(slices.Clone(b.voters), func(n string) bool { return n == name })
		}
		b.step(Step{Action: MoveLeader, Member: name, To: slices.Clone(to)})
	}
	// Drain first where the others keep quorum without it: stopped
	// gracefully, the member finishes the writes in flight on it while its
	// clients move to other members; then it is removed.
	others := len(b.voters) - 1
	if b.p.Request.Drain && others >= len(b.voters)/2+1 {
		b.stopped = append(b.stopped, name)
		b.step(Step{Action: Stop, Member: name})
		b.stopped = slices.DeleteFunc(b.stopped, func(n string) bool { return n == name })
		b.voters = slices.DeleteFunc(b.voters, func(n string) bool { return n == name })
		b.step(Step{Action: Remove, Member: name})
		return
	}
	b.voters = slices.DeleteFunc(b.voters, func(n string) bool { return n == name })
	b.step(Step{Action: Remove, Member: name})
	b.step(Step{Action: Stop, Member: name})
}

// Drains tells whether the stop of member name comes before its removal.
func (p *Plan) Drains(name string) bool {
	for _, s := range p.Steps {
		if s.Member == name && (s.Action == Stop || s.Action == Remove) {
			return s.Action == Stop
		}
	}
	return false
}

// display names a member, or its ID when it never started.
func display(m Member) string {
	if m.Name != "" {
		return m.Name
	}
	return fmt.Sprintf("%x", m.ID)
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
