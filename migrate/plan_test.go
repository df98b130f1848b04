package migrate

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// cluster returns the facts of a healthy cluster of the named members at
// version v, led by the first.
func cluster(v string, names ...string) Facts {
	f := Facts{ClusterID: 0x8e9e05c52164694d}
	for i, n := range names {
		f.Members = append(f.Members, Member{ID: uint64(i + 1), Name: n, PeerURLs: []string{fmt.Sprintf("https://10.0.0.%d:2380", i+1)},
			ClientURLs: []string{fmt.Sprintf("https://10.0.0.%d:2379", i+1)}, Version: v})
	}
	f.Leader = 1
	return f
}

func adds(names ...string) []Add {
	var out []Add
	for i, n := range names {
		out = append(out, Add{Name: n, PeerURL: fmt.Sprintf("https://10.1.0.%d:2380", i+1)})
	}
	return out
}

// TestPlanGolden checks the printed plans (table and JSON) against golden
// files; run with -update to rewrite them.
func TestPlanGolden(t *testing.T) {
	followerLeads := cluster("3.6.16", "a", "b", "c")
	followerLeads.Leader = 2
	tests := []struct {
		name  string
		facts Facts
		req   Request
	}{
		{"replace-one-by-one", cluster("3.6.16", "a", "b", "c"), Request{Adds: adds("A", "B", "C"), Removes: []string{"a", "b", "c"}}},
		{"replace-add-first", followerLeads, Request{Adds: adds("A", "B", "C"), Removes: []string{"a", "b", "c"}, Order: AddFirst}},
		{"scale-out", cluster("3.5.35", "a"), Request{Adds: adds("B", "C")}},
		{"scale-in", cluster("3.6.16", "a", "b", "c", "d", "e"), Request{Removes: []string{"a", "e"}}},
		{"replace-one-by-one-drain", cluster("3.6.16", "a", "b", "c"), Request{Adds: adds("A", "B", "C"), Removes: []string{"a", "b", "c"}, Drain: true}},
		{"replace-add-first-drain", followerLeads, Request{Adds: adds("A", "B", "C"), Removes: []string{"a", "b", "c"}, Order: AddFirst, Drain: true}},
		{"scale-in-drain", cluster("3.6.16", "a", "b", "c", "d", "e"), Request{Removes: []string{"a", "e"}, Drain: true}},
		{"scale-in-2-to-1-drain", cluster("3.6.16", "a", "b"), Request{Removes: []string{"b"}, Drain: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(tt.facts, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			var tab, js bytes.Buffer
			if err := WriteTable(&tab, p); err != nil {
				t.Fatal(err)
			}
			if err := WriteJSON(&js, p, "", 0); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name+".txt", tab.Bytes())
			golden(t, tt.name+".json", js.Bytes())
		})
	}
}

// TestPlanRules checks the order of steps and the membership after each
// against what etcd allows: one learner at a time, the leader removed last
// and only after leadership moved, quorum and tolerance never too low.
func TestPlanRules(t *testing.T) {
	for _, tt := range []struct {
		name  string
		facts Facts
		req   Request
	}{
		{"3 to 3 one-by-one", cluster("3.6.16", "a", "b", "c"), Request{Adds: adds("A", "B", "C"), Removes: []string{"c", "a", "b"}}},
		{"3 to 3 add-first", cluster("3.6.16", "a", "b", "c"), Request{Adds: adds("A", "B", "C"), Removes: []string{"a", "b", "c"}, Order: AddFirst}},
		{"1 to 3", cluster("3.6.16", "a"), Request{Adds: adds("A", "B", "C"), Removes: []string{"a"}}},
		{"5 to 3", cluster("3.6.16", "a", "b", "c", "d", "e"), Request{Removes: []string{"a", "b"}}},
	} {
		for _, drain := range []bool{false, true} {
			tt.req.Drain = drain
			t.Run(fmt.Sprintf("%s drain=%v", tt.name, drain), func(t *testing.T) { checkPlanRules(t, tt.facts, tt.req) })
		}
	}
}

func checkPlanRules(t *testing.T, facts Facts, req Request) {
	p, err := NewPlan(facts, req)
	if err != nil {
		t.Fatal(err)
	}
	leader, leaderGone := p.Leader, false
	moved := false
	for i, s := range p.Steps {
		if len(s.Learners) > 1 {
			t.Errorf("step %d: %d learners", i+1, len(s.Learners))
		}
		up := len(s.Voters) - len(s.Stopped)
		if s.Quorum != len(s.Voters)/2+1 || s.Tolerates != up-s.Quorum || s.Tolerates < 0 {
			t.Errorf("step %d: quorum %d tolerates %d with %d voters, %d up", i+1, s.Quorum, s.Tolerates, len(s.Voters), up)
		}
		if p.Before.Tolerates >= 1 && (len(s.Voters)-1)/2 < 1 {
			t.Errorf("step %d: the membership tolerates no failure", i+1)
		}
		if len(s.Stopped) > 1 || len(s.Stopped) == 1 && (s.Action != Stop || s.Stopped[0] != s.Member) {
			t.Errorf("step %d (%s %s): stopped %v; only a drain stop leaves one voter stopped, until the next step", i+1, s.Action, s.Member, s.Stopped)
		}
		if s.Action == Remove && req.Drain && up > 1 && (i == 0 || p.Steps[i-1].Action != Stop || p.Steps[i-1].Member != s.Member) {
			t.Errorf("step %d removes %s without draining it first", i+1, s.Member)
		}
		switch {
		case s.Action == MoveLeader:
			moved = true
		case s.Action == Remove && s.Member == leader:
			if !moved {
				t.Errorf("step %d removes leader %s before moving leadership", i+1, leader)
			}
			leaderGone = true
		case s.Action == Remove && leaderGone:
			t.Errorf("step %d removes %s after the leader", i+1, s.Member)
		}
	}
	final := p.Final()
	want := len(facts.Members) + len(req.Adds) - len(req.Removes)
	if len(final.Voters) != want || len(final.Learners) != 0 || len(final.Stopped) != 0 {
		t.Errorf("final membership %+v, want %d voters", final, want)
	}
}

func TestPlanRefuses(t *testing.T) {
	unhealthy := cluster("3.6.16", "a", "b", "c")
	unhealthy.Unhealthy = "member b unreachable"
	learner := cluster("3.6.16", "a", "b", "c")
	learner.Members[2].IsLearner = true
	three := cluster("3.6.16", "a", "b", "c")
	for _, tt := range []struct {
		name  string
		facts Facts
		req   Request
		want  string // in the error
		input string
	}{
		{"nothing asked", three, Request{}, "at least one member", "add"},
		{"bad order", three, Request{Adds: adds("A"), Order: "all-at-once"}, "one-by-one or add-first", "order"},
		{"unknown member", three, Request{Removes: []string{"x"}}, "not a member", "remove"},
		{"removed twice", three, Request{Adds: adds("A", "B"), Removes: []string{"b", "b"}}, "given twice", "remove"},
		{"leader removed twice", three, Request{Adds: adds("A", "B"), Removes: []string{"a", "a"}}, "given twice", "remove"},
		{"duplicate add name", three, Request{Adds: []Add{{"A", "https://10.1.0.1:2380"}, {"A", "https://10.1.0.2:2380"}}}, "given to another", "add"},
		{"duplicate add URL", three, Request{Adds: []Add{{"A", "https://10.1.0.1:2380"}, {"B", "https://10.1.0.1:2380"}}}, "given to another", "add"},
		{"name in use", three, Request{Adds: []Add{{"b", "https://10.1.0.1:2380"}}}, "current member b", "add"},
		{"peer URL in use", three, Request{Adds: []Add{{"A", "https://10.0.0.2:2380"}}}, "peer URL of current member b", "add"},
		{"every member", three, Request{Removes: []string{"a", "b", "c"}}, "every member", "remove"},
		{"tolerance lost", three, Request{Removes: []string{"b"}}, "tolerate no failure", "remove"},
		{"tolerance lost in add-first", cluster("3.6.16", "a", "b", "c", "d"), Request{Removes: []string{"b", "c"}}, "tolerate no failure", "remove"},
		{"unhealthy", unhealthy, Request{Adds: adds("A")}, "member b unreachable", "cluster"},
		{"foreign learner", learner, Request{Adds: adds("A")}, "learner", "cluster"},
		{"old 3.5", cluster("3.5.17", "a", "b", "c"), Request{Adds: adds("A")}, "3.5.26 or later", "cluster"},
		{"3.4", cluster("3.4.30", "a", "b", "c"), Request{Adds: adds("A")}, "3.5.26 or later and 3.6", "cluster"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(tt.facts, tt.req)
			ie, ok := err.(*InputError)
			if !ok {
				t.Fatalf("got plan %+v, error %v; want an *InputError", p, err)
			}
			if ie.Input != tt.input || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q (input %s), want one line with %q, input %s", err, ie.Input, tt.want, tt.input)
			}
		})
	}
}

func TestParseAdd(t *testing.T) {
	for _, tt := range []struct {
		in, want, err string
	}{
		{"A=https://10.1.0.1:2380", "A=https://10.1.0.1:2380", ""},
		{"A=http://[::1]:2380", "A=http://[::1]:2380", ""},
		{"A", "", "NAME=PEERURL"},
		{"=https://10.1.0.1:2380", "", "NAME=PEERURL"},
		{"A=", "", "NAME=PEERURL"},
		{"A=10.1.0.1:2380", "", "peer URL"},
		{"A=https://10.1.0.1", "", "peer URL"},
		{"a b=https://10.1.0.1:2380", "", "no spaces"},
		{"{x}=https://10.1.0.1:2380", "", "braces"},
	} {
		a, err := ParseAdd(tt.in)
		switch {
		case tt.err == "" && (err != nil || a.Name+"="+a.PeerURL != tt.want):
			t.Errorf("ParseAdd(%q) = %+v, %v; want %s", tt.in, a, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseAdd(%q) error %v, want %q", tt.in, err, tt.err)
		}
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from its golden file (run with -update to rewrite it):\n%s", name, got)
	}
}
