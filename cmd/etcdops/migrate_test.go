package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/migrate"
)

// TestMigrateBadInput: each mistake is one line naming the input, exit 2,
// and neither the membership nor the working directory changes.
func TestMigrateBadInput(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 3)
	ep := strings.Join(c.Endpoints(), ",")
	before := memberIDs(t, c.Endpoints())
	add := "A=http://" + etcdtest.FreeAddr(t)
	foreign := `{"version":1,"cluster_id":"abc","plan":{"cluster_id":"abc","request":{"order":"one-by-one"},"steps":[]},"state":"running"}`
	for _, tt := range []struct {
		args  []string
		code  int
		want  []string
		files map[string]string
	}{
		{[]string{"plan", "--add", "A"}, 2, []string{"--add", `"A"`, "expected NAME=PEERURL"}, nil},
		{[]string{"run", "--add", "A=10.0.0.1:2380"}, 2, []string{"--add", "expected a peer URL"}, nil},
		{[]string{"plan", "--remove", "x"}, 2, []string{"--remove", `"x"`, "not a member"}, nil},
		{[]string{"run", "--add", add, "--add", add}, 2, []string{"--add", "listed twice"}, nil},
		{[]string{"run", "--add", add, "--remove", "m1", "--remove", "m1"}, 2, []string{"--remove", `"m1"`, "given twice"}, nil},
		{[]string{"run", "--remove", "m1"}, 2, []string{"--remove", "tolerate no failure"}, nil},
		{[]string{"run", "--remove", "m0", "--remove", "m1", "--remove", "m2"}, 2, []string{"--remove", "every member"}, nil},
		{[]string{"run", "--add", "B=" + c.Members[0].Spec.PeerURL}, 2, []string{"--add", "peer URL", "current member m0"}, nil},
		{[]string{"run", "--add", add, "--start-cmd", "ssh {host} start"}, 2, []string{"--start-cmd", "unknown placeholder {host}"}, nil},
		{[]string{"run", "--add", add, "--order", "random"}, 2, []string{"--order", "one-by-one or add-first"}, nil},
		{[]string{"run", "--add", add, "-w", "yaml"}, 2, []string{"--write-out", `"yaml"`}, nil},
		{[]string{"run", "--add", add, "--state-file", "other.json"}, 2, []string{"--state-file", "cluster abc"}, map[string]string{"other.json": foreign}},
		{[]string{"abort", "--state-file", "missing.json"}, 2, []string{"--state-file", "nothing to abort"}, nil},
		{[]string{"run", "--add", add, "--timeout", "0s"}, 2, []string{"--step-timeout 0s", "expected a positive duration"}, nil},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := append([]string{"migrate"}, tt.args...)
			args = append(args, "--endpoints", ep)
			_, stderr, code := runIn(t, dir, nil, args...)
			line := strings.TrimSuffix(stderr, "\n")
			if code != tt.code || strings.Contains(line, "\n") {
				t.Fatalf("exit %d, stderr %q; want exit %d and one line", code, stderr, tt.code)
			}
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("stderr %q lacks %q", line, w)
				}
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != len(tt.files) {
				t.Errorf("the working directory holds %d entries, want %d", len(entries), len(tt.files))
			}
			if after := memberIDs(t, c.Endpoints()); !slices.Equal(after, before) {
				t.Errorf("members changed: %x, were %x", after, before)
			}
		})
	}
	if _, stderr, code := runEtcdops(t, nil, "migrate", "plan", "--endpoints", "http://"+etcdtest.FreeAddr(t), "--add", add,
		"--command-timeout", "1s"); code != 1 || !strings.Contains(stderr, "cluster unreachable") {
		t.Errorf("unreachable cluster: exit %d, %q; want exit 1", code, stderr)
	}
}

// TestMigrateRunScalesOut runs the command with a start command that
// starts `etcdops serve` members from the written configuration. A rerun
// finds nothing to do, with --stop-cmd or without (it shapes how steps run,
// not what they do); plan, run and abort print JSON lines (run's say their
// "event").
func TestMigrateRunScalesOut(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	dir := t.TempDir()
	t.Cleanup(func() {
		pids, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
		for _, f := range pids {
			b, _ := os.ReadFile(f)
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	peer, client := "http://"+etcdtest.FreeAddr(t), "http://"+etcdtest.FreeAddr(t)
	start := etcdtest.EtcdopsBin(t) + " serve --config-file {config} >" + dir + "/{name}.log 2>&1 & echo $! >" + dir + "/{name}.pid"
	args := []string{"migrate", "run", "--endpoints", c.Endpoints()[0], "--add", "B=" + peer, "--client-urls", "B=" + client,
		"--data-dir-template", dir + "/{name}.etcd", "--config-dir", dir, "--start-cmd", start, "--timeout", "1m"}
	stdout, stderr, code := runIn(t, dir, nil, append(args, "--stop-cmd", "true")...)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
	for _, want := range []string{"[4/4] promote B", "endpoints for clients (e.g. kube-apiserver --etcd-servers): ", client} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if ids := memberIDs(t, c.Endpoints()); len(ids) != 2 {
		t.Errorf("%d members, want 2", len(ids))
	}
	if conf, err := os.ReadFile(filepath.Join(dir, "B.yml")); err != nil || !strings.Contains(string(conf), "initial-cluster-state: existing") {
		t.Errorf("B.yml: %s %v", conf, err)
	}
	stdout, stderr, code = runIn(t, dir, nil, args...)
	if code != 0 || !strings.HasPrefix(stdout, "nothing to do") {
		t.Errorf("rerun without --stop-cmd: exit %d, %q %q; want nothing to do", code, stdout, stderr)
	}

	stdout, stderr, code = runIn(t, dir, nil, append(args, "--stop-cmd", "true", "-w", "json")...)
	if ev := jsonLine(t, stdout); code != 0 || ev["event"] != "finished" || ev["nothing_to_do"] != true {
		t.Errorf("rerun -w json: exit %d, %q %q; want one line, event finished, nothing to do", code, stdout, stderr)
	}
	plan := append([]string{"migrate", "plan"}, args[2:]...)
	stdout, stderr, code = runIn(t, dir, nil, append(plan, "-w", "json")...)
	p := jsonLine(t, stdout)
	steps, _ := p["steps"].([]any)
	journal, _ := p["state_file"].(string)
	if code != 0 || p["done"] != 4.0 || journal == "" || len(steps) != 4 {
		t.Fatalf("plan -w json: exit %d, %q %q; want one line with 4 steps, 4 done, and the journal", code, stdout, stderr)
	}
	stdout, stderr, code = runIn(t, dir, nil, "migrate", "abort", "--endpoints", c.Endpoints()[0], "--state-file", journal, "-w", "json")
	if a := jsonLine(t, stdout); code != 0 || a["state_file"] == nil {
		t.Errorf("abort -w json: exit %d, %q %q; want one line", code, stdout, stderr)
	}
}

// jsonLine parses out, which must be one JSON object on one line.
func jsonLine(t *testing.T, out string) map[string]any {
	t.Helper()
	var v map[string]any
	if strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &v) != nil {
		t.Errorf("want one JSON object on one line, got %q", out)
	}
	return v
}

// TestMigrateUsageShowsEveryFlagThatShapesThePlan: each flag that changes
// the request a plan is made from appears in the usage of both plan and
// run, so that the command line copied from either plans what run does.
func TestMigrateUsageShowsEveryFlagThatShapesThePlan(t *testing.T) {
	request := func(args ...string) migrate.Request {
		t.Helper()
		var req migrate.Request
		app := &cli.App{Writer: io.Discard, ErrWriter: io.Discard, Commands: []*cli.Command{{Name: "x", Flags: migrateFlags(),
			Action: func(c *cli.Context) error {
				in, err := migrateRequest(c)
				if err == nil {
					req = in.req
				}
				return err
			}}}}
		if err := app.Run(append([]string{"etcdops", "x", "--add", "A=http://127.0.0.1:2380"}, args...)); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return req
	}
	// A valid value of each flag (with the flag it needs, if any).
	samples := map[string][]string{
		"add": {"B=http://127.0.0.2:2380"}, "remove": {"m1"}, "order": {"add-first"}, "endpoints": {"http://127.0.0.1:1"},
		"cert": {"c.pem", "--key", "k.pem"}, "key": {"k.pem", "--cert", "c.pem"}, "password": {"p", "--user", "u"},
		"client-urls": {"A=http://127.0.0.1:2379"}, "cert-file": {"c.pem", "--key-file", "k.pem"}, "key-file": {"k.pem", "--cert-file", "c.pem"},
		"peer-cert-file": {"c.pem", "--peer-key-file", "k.pem"}, "peer-key-file": {"k.pem", "--peer-cert-file", "c.pem"},
		"write-out": {"json"}, "log-level": {"error"},
	}
	base := request()
	var shaping []string
	for _, f := range migrateFlags() {
		name := f.Names()[0]
		args := []string{"--" + name}
		switch f.(type) {
		case *cli.BoolFlag:
		case *cli.DurationFlag:
			args = append(args, "1m")
		case *cli.Uint64Flag:
			args = append(args, "7")
		default:
			v, ok := samples[name]
			if !ok {
				v = []string{"x"}
			}
			args = append(args, v...)
		}
		if reflect.DeepEqual(request(args...), base) {
			continue
		}
		shaping = append(shaping, name)
		for _, c := range []*cli.Command{migratePlanCommand(), migrateRunCommand()} {
			if !strings.Contains(c.UsageText, "--"+name+" ") {
				t.Errorf("migrate %s: --%s changes the plan, and its usage %q lacks it", c.Name, name, c.UsageText)
			}
		}
	}
	if want := []string{"add", "remove", "order", "stop-cmd"}; !slices.Equal(shaping, want) {
		t.Errorf("flags that shape the plan: %v, want %v", shaping, want)
	}
}
