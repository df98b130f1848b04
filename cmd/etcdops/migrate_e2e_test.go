package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcdops/internal/etcdtest"
)

// End-to-end tests of `etcdops migrate` with real processes: stock etcd 3.6
// and 3.5 and `etcdops serve` members, started by the --start-cmd template,
// under 500 writes/s through a client that follows the membership
// (AutoSyncInterval), with a watcher sampling quorum every 100ms.

func TestMigrateOntoServeMembers(t *testing.T) {
	for _, tt := range []struct {
		name, server string
		tls          bool
	}{
		{"from stock etcd 3.6", etcdtest.StockEtcd, false},
		{"from stock etcd 3.5", etcdtest.StockEtcd35, false},
		{"from etcdops with client and peer mTLS", "serve", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ca *etcdtest.CA
			if tt.tls {
				ca = etcdtest.NewCA(t)
			}
			m := startMigration(t, tt.server, ca, "a", "b", "c")
			adds := m.newMembers("A", "B", "C")
			w, q := m.load()
			args := m.args("run", adds, []string{"a", "b", "c"}, "--start-cmd="+m.startCmd(), "--stop-cmd="+m.stopCmd(), "--step-timeout=60s")
			r := m.migrate(args...)
			if r.code != 0 {
				t.Fatalf("migrate run: %v", r)
			}
			if strings.Contains(r.stderr, "retrying of unary invoker failed") {
				t.Errorf("the client's expected retries reached stderr:\n%s", r.stderr)
			}
			m.checkLoad(w, q, "A", "B", "C")
			m.checkMembers("A", "B", "C")
			m.checkHashKV("A", "B", "C")
			m.checkStopped("a", "b", "c")

			m.checkRerun(args, "A", "B", "C")
		})
	}
}

func TestMigrateMovesLeadershipBeforeRemovingTheLeader(t *testing.T) {
	m := startMigration(t, "serve", nil, "a", "b", "c")
	leader := m.leader("a", "b", "c")
	var rest []string
	for _, n := range []string{"a", "b", "c"} {
		if n != leader {
			rest = append(rest, n)
		}
	}
	adds := m.newMembers("D")
	w, q := m.load()
	r := m.migrate(m.args("run", adds, []string{leader}, "--start-cmd="+m.startCmd(), "--stop-cmd="+m.stopCmd(), "--step-timeout=60s")...)
	if r.code != 0 {
		t.Fatalf("migrate run: %v", r)
	}
	want := append(rest, "D")
	m.checkLoad(w, q, want...)
	m.checkMembers(want...)
	m.checkHashKV(want...)
	m.checkStopped(leader)
	moved, removed := -1, -1
	for i, ev := range r.events {
		switch {
		case moved < 0 && ev["action"] == "move-leader" && ev["member"] == leader:
			moved = i
		case removed < 0 && ev["action"] == "remove" && ev["member"] == leader:
			removed = i
		}
	}
	if moved < 0 || removed < moved {
		t.Errorf("want leadership moved (event %d) before %s is removed (event %d): %v", moved, leader, removed, r)
	}
}

func TestMigrateScales(t *testing.T) {
	for _, tt := range []struct {
		name          string
		old, add, rm  []string
		want, stopped []string
	}{
		{"out from 1 to 3", []string{"a"}, []string{"B", "C"}, nil, []string{"a", "B", "C"}, nil},
		{"in from 5 to 3", []string{"a", "b", "c", "d", "e"}, nil, []string{"d", "e"}, []string{"a", "b", "c"}, []string{"d", "e"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := startMigration(t, "serve", nil, tt.old...)
			adds := m.newMembers(tt.add...)
			w, q := m.load()
			r := m.migrate(m.args("run", adds, tt.rm, "--start-cmd="+m.startCmd(), "--stop-cmd="+m.stopCmd(), "--step-timeout=60s")...)
			if r.code != 0 {
				t.Fatalf("migrate run: %v", r)
			}
			m.checkLoad(w, q, tt.want...)
			m.checkMembers(tt.want...)
			m.checkHashKV(tt.want...)
			m.checkStopped(tt.stopped...)
		})
	}
}

// TestMigrateResumesAfterKill kills migrate with SIGKILL at every step
// boundary (each event it has not printed before) and in the middle of each
// wait for a new member, and reruns it until it finishes.
func TestMigrateResumesAfterKill(t *testing.T) {
	m := startMigration(t, "serve", nil, "a", "b", "c")
	m.delay = 2 * time.Second // each new member starts late, so a kill lands in the wait
	adds := m.newMembers("A", "B", "C")
	w, q := m.load()
	args := m.args("run", adds, []string{"a", "b", "c"}, "--start-cmd="+m.startCmd(), "--stop-cmd="+m.stopCmd(), "--step-timeout=60s")
	seen := map[string]bool{}
	kills, waits := 0, 0
	for run := 1; ; run++ {
		if run > 80 {
			t.Fatalf("migration not finished after %d runs", run)
		}
		r, killed := m.startMigrate(func(ev event) bool {
			k := eventKey(ev)
			if seen[k] {
				return false
			}
			seen[k] = true
			if isStartEvent(ev) {
				time.Sleep(m.delay / 2)
				waits++
			}
			return true
		}, args...)
		if !killed {
			if r.code != 0 {
				t.Fatalf("run %d after %d kills: %v", run, kills, r)
			}
			break
		}
		kills++
	}
	t.Logf("%d kills, %d of them waiting for a new member", kills, waits)
	if kills < 6 || waits < 3 {
		t.Errorf("want kills at every step and in each of 3 waits, got %d kills, %d in waits", kills, waits)
	}
	m.checkLoad(w, q, "A", "B", "C")
	m.checkMembers("A", "B", "C")
	m.checkHashKV("A", "B", "C")
	m.checkStopped("a", "b", "c")
}

// TestMigrateMemberThatNeverStarts: the learner is removed again, the
// cluster is as before and migrate exits 1; abort removes a learner that a
// killed migrate left. The wait for it is logged. Then A starts and dies
// before it catches up: removed again, it leaves a data dir with the WAL of
// a removed member, which the rerun moves aside before A starts afresh.
func TestMigrateMemberThatNeverStarts(t *testing.T) {
	m := startMigration(t, "serve", nil, "a", "b", "c")
	adds := m.newMembers("A")
	w, q := m.load()
	abort := append([]string{"migrate", "abort", "--state-file=" + m.dir + "/migrate.json",
		"--endpoints=" + strings.Join(m.old.Endpoints(), ",")}, m.clientTLSArgs()...)

	// Killed while it waits for the learner; abort removes it.
	cmd := exec.Command(etcdtest.EtcdopsBin(t), m.args("run", adds, nil, "--start-cmd=true", "--step-timeout=5m")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	etcdtest.Eventually(t, 60*time.Second, func() error {
		if slices.ContainsFunc(m.members("a", "b", "c"), func(mem memberJSON) bool { return mem.IsLearner }) {
			return nil
		}
		return errorf("no learner yet")
	})
	cmd.Process.Kill()
	cmd.Wait()
	if r := m.migrate(abort...); r.code != 0 {
		t.Fatalf("abort: %v", r)
	}
	m.checkMembers("a", "b", "c")

	// An aborted journal is not resumed: the next migration has its own.
	second := "--state-file=" + m.dir + "/second.json"
	r := m.migrate(m.args("run", adds, nil, "--start-cmd=true", "--step-timeout=10s", second)...)
	if r.code != 1 || !strings.Contains(r.stderr, "new member A") {
		t.Fatalf("run with a member that never starts: want exit 1 naming A, got %v", r)
	}
	if !strings.Contains(r.stderr, `"msg":"waiting","for":"member A to start"`) {
		t.Errorf("the wait for A to start was not logged: %v", r)
	}
	m.checkMembers("a", "b", "c")
	if r := m.migrate(append(abort, second)...); r.code != 0 {
		t.Fatalf("abort after the failed run: %v", r)
	}
	m.checkMembers("a", "b", "c")

	third := "--state-file=" + m.dir + "/third.json"
	r = m.migrate(m.args("run", adds, nil, "--start-cmd="+m.diesCmd(), "--step-timeout=10s", third)...)
	dataDir := filepath.Join(m.dir, "A.etcd")
	if r.code != 1 || !strings.Contains(r.stderr, "a rerun moves its data dir "+dataDir+" aside") {
		t.Fatalf("run with a member that dies before it catches up: want exit 1 saying its data dir goes aside, got %v", r)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "member", "wal")); err != nil {
		t.Fatalf("A died without a WAL, the test proves nothing: %v", err)
	}
	m.checkMembers("a", "b", "c")
	r = m.migrate(m.args("run", adds, nil, "--start-cmd="+m.startCmd(), "--step-timeout=60s", third)...)
	if r.code != 0 {
		t.Fatalf("rerun after A was removed again: %v", r)
	}
	if aside, _ := filepath.Glob(dataDir + ".old-*"); len(aside) != 1 {
		t.Errorf("data dirs moved aside: %v, want one", aside)
	}
	m.checkMembers("a", "b", "c", "A")
	m.checkLoad(w, q, "a", "b", "c", "A")
}

// checkRerun reruns a finished migration: with the same command line, then
// with the new members' endpoints, then without --stop-cmd (which shapes
// how the steps ran, not what they did), it must find nothing to do.
func (m *migration) checkRerun(args []string, newMembers ...string) {
	m.t.Helper()
	nothingToDo := func(r migrateRun) bool {
		return r.code == 0 && slices.ContainsFunc(r.events, func(ev event) bool { return ev["nothing_to_do"] == true })
	}
	r := m.migrate(args...)
	if !nothingToDo(r) {
		m.t.Errorf("rerun of a finished migration: %v", r)
	}
	r = m.migrate(withEndpoints(args, m.endpoints(newMembers...))...)
	if !nothingToDo(r) {
		m.t.Errorf("rerun of a finished migration with the new endpoints: %v", r)
	}
	r = m.migrate(slices.DeleteFunc(slices.Clone(args), func(a string) bool { return strings.HasPrefix(a, "--stop-cmd=") })...)
	if !nothingToDo(r) {
		m.t.Errorf("rerun of a finished migration without --stop-cmd: %v", r)
	}
}

// withEndpoints returns args with --endpoints replaced by eps.
func withEndpoints(args, eps []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if strings.HasPrefix(a, "--endpoints=") {
			out[i] = "--endpoints=" + strings.Join(eps, ",")
		}
	}
	return out
}

// eventKey identifies a step's event by its action and member, so that a
// rerun reporting the step again ("already done") is recognised.
func eventKey(ev event) string { return fmt.Sprint(ev["action"], " ", ev["member"]) }

// isStartEvent reports whether the event says a new member was started.
func isStartEvent(ev event) bool { return ev["action"] == "start" }

// TestMigrateWalkthroughExample runs examples/migrate/walkthrough.sh, the
// migration of README.md on one machine.
func TestMigrateWalkthroughExample(t *testing.T) {
	var ports []string
	for range 12 {
		ports = append(ports, strings.Split(etcdtest.FreeAddr(t), ":")[1])
	}
	work := t.TempDir()
	cmd := exec.Command("bash", filepath.Join("..", "..", "examples", "migrate", "walkthrough.sh"))
	cmd.Env = append(os.Environ(), "ETCDOPS="+etcdtest.EtcdopsBin(t), "ETCDCTL="+etcdtest.Tool(t, "etcdctl"),
		"PORTS="+strings.Join(ports, " "), "WORK="+work)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasSuffix(string(out), "migrated cluster serves every key and takes writes\n") {
		t.Fatalf("walkthrough: %v\n%s", err, out)
	}
	t.Log(string(out))
}
