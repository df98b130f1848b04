package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/internal/etcdtest"
)

// End-to-end tests of `etcdops defrag` with real processes: a 3-member
// `etcdops serve` cluster with client-certificate TLS and a stock etcd 3.6
// cluster, each restored from a database of ~256 MiB that is 95% free, grown
// a little, mostly deleted, then compacted and defragmented by the command
// under 500 writes/s through etcd's client.

// defragCluster is a cluster of member processes and the client to reach it.
type defragCluster struct {
	t     *testing.T
	procs *etcdtest.ProcessCluster
	tls   *etcdtest.TLSFiles
	cli   *clientv3.Client
}

// startDefragCluster starts a cluster of server ("serve" or a stock tool),
// its members restored from snap when it is not "".
func startDefragCluster(t *testing.T, server string, withTLS bool, snap string) *defragCluster {
	t.Helper()
	specs := etcdtest.Specs(t, 3, t.TempDir())
	d := &defragCluster{t: t}
	if withTLS {
		ca := etcdtest.NewCA(t)
		specs = etcdtest.WithTLS(t, specs, ca)
		pair := ca.Issue(t, "client")
		d.tls = &etcdtest.TLSFiles{CAFile: ca.CertFile, CertFile: pair.CertFile, KeyFile: pair.KeyFile}
	}
	if snap != "" {
		restoreSpecs(t, snap, specs)
	}
	bin, command := etcdtest.EtcdopsBin(t), []string{"serve"}
	if server != "serve" {
		bin, command = etcdtest.Tool(t, server), nil
	}
	d.procs = etcdtest.StartProcesses(t, specs, bin, command...)
	if d.tls != nil {
		d.cli = etcdtest.NewTLSClient(t, d.tls, d.procs.Endpoints()...)
	} else {
		d.cli = etcdtest.NewClient(t, d.procs.Endpoints()...)
	}
	return d
}

// grow writes about mib MiB in transactions of 1 MiB, deletes it, and
// writes 200 small revisions after, so that a compaction keeping the last
// 100 reaches past the delete.
func (d *defragCluster) grow(mib int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	value := strings.Repeat("v", 64<<10)
	for i := range mib {
		var ops []clientv3.Op
		for j := range 16 {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("/grow/%04d/%02d", i, j), value))
		}
		if _, err := d.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			d.t.Fatal(err)
		}
	}
	if _, err := d.cli.Delete(ctx, "/grow/", clientv3.WithPrefix()); err != nil {
		d.t.Fatal(err)
	}
	for i := range 200 {
		if _, err := d.cli.Put(ctx, "/grow-pad", fmt.Sprint(i)); err != nil {
			d.t.Fatal(err)
		}
	}
}

type memberState struct {
	size  int64
	term  uint64
	lead  bool
	alive bool
}

// states returns each member's database size, term and leadership, by name.
func (d *defragCluster) states() map[string]memberState {
	d.t.Helper()
	out := map[string]memberState{}
	for _, p := range d.procs.Procs {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		st, err := d.cli.Status(ctx, p.Spec.ClientURL)
		cancel()
		if err != nil {
			out[p.Spec.Name] = memberState{}
			continue
		}
		out[p.Spec.Name] = memberState{size: st.DbSize, term: st.RaftTerm, lead: st.Leader == st.Header.MemberId, alive: true}
	}
	return out
}

func (d *defragCluster) args(extra ...string) []string {
	args := []string{"defrag", "--endpoints", d.procs.Endpoints()[0], "-w", "json"}
	if d.tls != nil {
		args = append(args, "--cacert", d.tls.CAFile, "--cert", d.tls.CertFile, "--key", d.tls.KeyFile)
	}
	return append(args, extra...)
}

// defragRun is one run of the command: its exit code, stderr and JSON lines.
type defragRun struct {
	code   int
	stderr string
	events []map[string]any
}

func (r defragRun) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exit %d\n", r.code)
	for _, ev := range r.events {
		j, _ := json.Marshal(ev)
		fmt.Fprintf(&b, "%s\n", j)
	}
	return b.String() + r.stderr
}

func (r defragRun) finished() map[string]any {
	for _, ev := range r.events {
		if ev["event"] == "finished" {
			return ev
		}
	}
	return nil
}

// defrag runs the command; onEvent sees each JSON line as it comes.
func (d *defragCluster) defrag(onEvent func(map[string]any), args ...string) defragRun {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, etcdtest.EtcdopsBin(d.t), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	var r defragRun
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev["event"] == nil {
			d.t.Errorf("stdout line is not a JSON event: %q", sc.Text())
			continue
		}
		ev["seen"] = time.Now().Format(time.RFC3339Nano)
		r.events = append(r.events, ev)
		if onEvent != nil {
			onEvent(ev)
		}
	}
	cmd.Wait()
	r.code, r.stderr = cmd.ProcessState.ExitCode(), stderr.String()
	return r
}

func TestDefragLiveCluster(t *testing.T) {
	// A few hundred MiB, 95% of it free, made once without fsync and
	// restored into each cluster: growing it through raft would write it
	// to every member's WAL and database with fsync. What stays in use is
	// small, so that a member's defragmentation stays well below the quorum
	// watcher's timeout, which a sample that reaches that member waits out.
	snap := fragmentedSnapshot(t, t.TempDir(), 256, 5)
	for _, tt := range []struct {
		name, server string
		tls          bool
	}{
		{"etcdops serve with client certificates", "serve", true},
		{"stock etcd 3.6", etcdtest.StockEtcd, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := startDefragCluster(t, tt.server, tt.tls, snap)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := d.cli.Get(ctx, "/grow-pad")
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			firstGrown := resp.Header.Revision + 1
			d.grow(4)
			before := d.states()
			for name, s := range before {
				if s.size < 200<<20 {
					t.Fatalf("member %s: database of %d MiB, want a few hundred", name, s.size>>20)
				}
			}

			// --dry-run changes nothing: no compaction, no file shrinks.
			r := d.defrag(nil, d.args("--dry-run", "--compact", "--compact-keep-revisions", "100")...)
			if r.code != 0 || len(r.events) != 3 || !strings.HasPrefix(fmt.Sprint(r.events[0]["detail"]), "would compact to") ||
				r.events[1]["event"] != "plan" || r.finished() == nil {
				t.Fatalf("dry run: want a compaction line, a plan line and a finished line: %v", r)
			}
			ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
			_, err = d.cli.Get(ctx, "/grow-pad", clientv3.WithRev(firstGrown))
			cancel()
			if err != nil {
				t.Errorf("dry run compacted: %v", err)
			}
			for name, s := range d.states() {
				if s.size < before[name].size || s.term != before[name].term {
					t.Errorf("dry run: %s went from %+v to %+v", name, before[name], s)
				}
			}

			w := etcdtest.StartWriter(t, d.procs.Endpoints(), etcdtest.WriterConfig{Rate: 500, Duration: 5 * time.Minute, TLS: d.tls,
				Workers: 1000}) // puts waiting on a defragmenting member must not hold back the schedule
			q := etcdtest.StartQuorumWatcher(t, d.procs.Endpoints(), d.tls, 3*time.Second)
			r = d.defrag(nil, d.args("--compact", "--compact-keep-revisions", "100", "--min-free", "8MiB")...)
			ws, qs := w.Stop(), q.Stop()
			t.Logf("%v\nwriter: %v\nquorum: %v", r, ws, qs)
			if r.code != 0 || r.finished() == nil {
				t.Fatalf("defrag: %v", r)
			}
			after := d.states()
			var oldLeader string
			for name, s := range before {
				if s.lead {
					oldLeader = name
				}
				if after[name].size > s.size/2 {
					t.Errorf("member %s: %d bytes before, %d after: want less than half", name, s.size, after[name].size)
				}
				if after[name].term != s.term+1 {
					t.Errorf("member %s: term %d before, %d after: want one election, the leadership move", name, s.term, after[name].term)
				}
			}
			if after[oldLeader].lead {
				t.Errorf("%s still leads: leadership was not moved", oldLeader)
			}
			members, _ := r.finished()["members"].([]any)
			if len(members) != 3 || members[2].(map[string]any)["name"] != oldLeader {
				t.Errorf("members %v: want 3, the leader %s last", members, oldLeader)
			}
			for _, m := range members {
				if m.(map[string]any)["outcome"] != "defragmented" {
					t.Errorf("member %v not defragmented", m)
				}
			}
			checkDefragLoad(t, r, ws, qs)
			w.Check(t, d.procs.Endpoints())
			// etcdops serve turns StopGRPCServiceOnDefrag on (stock etcd
			// leaves it off): its members report NOT_SERVING while they run.
			for _, p := range d.procs.Procs {
				if got := strings.Contains(p.Output(), `"reason":"defrag is active"`); got != (tt.server == "serve") {
					t.Errorf("member %s: gRPC health set NOT_SERVING during its defrag: %v, want %v", p.Spec.Name, got, tt.server == "serve")
				}
			}
		})
	}
}

// checkDefragLoad accepts no failed write but those etcd drops while the
// leadership moves (the span from the event before move-leader to it), at
// most maxDroppedPerLeaderMove, as migrate's tests do.
func checkDefragLoad(t *testing.T, r defragRun, ws etcdtest.WriterStats, qs etcdtest.QuorumStats) {
	t.Helper()
	var from, to time.Time
	for i, ev := range r.events {
		if ev["event"] == "move-leader" && i > 0 {
			from, _ = time.Parse(time.RFC3339Nano, r.events[i-1]["time"].(string))
			to, _ = time.Parse(time.RFC3339Nano, ev["time"].(string))
		}
	}
	dropped := 0
	for _, f := range ws.Failures {
		if f.Time.Before(from) || f.Time.After(to) || !droppedByTransfer(f.Err) {
			t.Errorf("write %s at %s failed outside the leadership move (%s to %s): %v", f.Key, f.Time.Format(time.StampMilli),
				from.Format(time.StampMilli), to.Format(time.StampMilli), f.Err)
			continue
		}
		dropped++
	}
	if dropped > maxDroppedPerLeaderMove {
		t.Errorf("%d writes dropped while leadership moved, want at most %d", dropped, maxDroppedPerLeaderMove)
	}
	if ws.Rate() < 475 {
		t.Errorf("writer sent %.0f writes/s, want 500", ws.Rate())
	}
	if len(qs.Lost) > 0 {
		t.Errorf("samples without quorum during the defrag: %v", qs)
	}
}

// TestDefragStopsWhenAMemberDies: a follower killed while the first one is
// defragmented stops the run before its turn (exit 1, naming it), and the
// leader is left as it was: not defragmented, still leading.
func TestDefragStopsWhenAMemberDies(t *testing.T) {
	d := startDefragCluster(t, "serve", false, "")
	d.grow(24)
	before := d.states()
	var victim string
	r := d.defrag(func(ev map[string]any) {
		switch ev["event"] {
		case "plan":
			plan := ev["plan"].([]any)
			victim = plan[1].(map[string]any)["name"].(string)
		case "defragmenting":
			if ev["step"] == float64(1) {
				for _, p := range d.procs.Procs {
					if p.Spec.Name == victim {
						p.Signal(t, syscall.SIGKILL)
					}
				}
			}
		}
	}, d.args("--all")...)
	t.Logf("%v", r)
	if r.code != 1 || !strings.Contains(r.stderr, "member "+victim+" is unreachable") {
		t.Fatalf("want exit 1 naming %s, unreachable: %v", victim, r)
	}
	if i := slices.IndexFunc(r.events, func(ev map[string]any) bool { return ev["event"] == "defragmenting" && ev["step"] != float64(1) }); i >= 0 {
		t.Errorf("a second member was touched: %v", r.events[i])
	}
	after := d.states()
	for name, s := range before {
		if s.lead && (after[name].size != s.size || !after[name].lead || after[name].term != s.term) {
			t.Errorf("leader %s: %+v before, %+v after: want it untouched", name, s, after[name])
		}
	}
}
