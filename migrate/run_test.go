package migrate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcdops/etcdops/internal/etcdclient"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/restore"
)

// fixture is an in-process cluster to migrate, and new members that start
// in-process from the configuration the migration writes, as an operator
// would run `etcdops serve --config-file` when the run prints it.
type fixture struct {
	t       *testing.T
	dir     string
	old     *etcdtest.EmbeddedCluster
	mu      sync.Mutex
	started map[string]func() // each closes a member the run had the operator start
	// beforeStart, when set, runs as the operator is asked to start a
	// member; returning false leaves the member unstarted.
	beforeStart func(name string) bool
	// ca, when set, issues the certificates of mTLS for clients and peers.
	ca *etcdtest.CA
	// said is what the operator was told.
	said strings.Builder
}

func newFixture(t *testing.T, n int) *fixture {
	return newFixtureTLS(t, n, nil)
}

// newFixtureTLS is newFixture with client and peer mTLS when ca is set.
func newFixtureTLS(t *testing.T, n int, ca *etcdtest.CA) *fixture {
	f := &fixture{t: t, dir: t.TempDir(), started: map[string]func(){}, ca: ca}
	specs := etcdtest.Specs(t, n, t.TempDir())
	if ca != nil {
		specs = etcdtest.WithTLS(t, specs, ca)
	}
	f.old = etcdtest.StartEmbeddedSpecs(t, specs)
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, closeEtcd := range f.started {
			closeEtcd()
		}
	})
	return f
}

// Write reads the operator's instructions and starts each member named.
func (f *fixture) Write(p []byte) (int, error) {
	f.mu.Lock()
	f.said.Write(p)
	f.mu.Unlock()
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		_, file, ok := strings.Cut(sc.Text(), "etcdops serve --config-file ")
		if !ok {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(file), ".yml")
		if f.beforeStart != nil && !f.beforeStart(name) {
			continue
		}
		cfg, err := embed.ConfigFromFile(file)
		if err != nil {
			return 0, err
		}
		cfg.UnsafeNoFsync, cfg.LogLevel, cfg.TickMs, cfg.ElectionMs = true, "error", 50, 500
		_, closeEtcd, err := etcdtest.StartEtcd(cfg)
		if err != nil {
			f.t.Errorf("start %s: %v", name, err)
			continue
		}
		f.mu.Lock()
		f.started[name] = closeEtcd
		f.mu.Unlock()
	}
	return len(p), nil
}

// options are those of a run that adds the named members and removes the
// old ones given, starting from the old cluster's endpoints.
func (f *fixture) options(add []string, remove ...string) Options {
	var cluster []string
	var req Request
	scheme := "http://"
	if f.ca != nil {
		scheme = "https://"
	}
	for _, name := range add {
		u := scheme + etcdtest.FreeAddr(f.t)
		req.Adds = append(req.Adds, Add{Name: name, PeerURL: u})
		cluster = append(cluster, name+"="+u)
	}
	req.Removes = remove
	var clients []string
	for _, name := range add {
		clients = append(clients, name+"="+scheme+etcdtest.FreeAddr(f.t))
	}
	o := Options{
		Connection: Connection{Client: etcdclient.Config{Endpoints: f.old.Endpoints(), DialTimeout: 2 * time.Second}, Timeout: 5 * time.Second},
		Request:    req, StateFile: filepath.Join(f.dir, "journal.json"), StepTimeout: 30 * time.Second, MaxLag: 10,
		Operator: f, poll: 100 * time.Millisecond,
	}
	var tls restore.TLS
	if f.ca != nil {
		client := f.ca.Issue(f.t, "client")
		o.Connection.Client.CACert, o.Connection.Client.Cert, o.Connection.Client.Key = f.ca.CertFile, client.CertFile, client.KeyFile
		for _, name := range add {
			f.ca.Issue(f.t, name)
		}
		cert, key := filepath.Join(f.ca.Dir, "{name}.pem"), filepath.Join(f.ca.Dir, "{name}-key.pem")
		tls = restore.TLS{CertFile: cert, KeyFile: key, TrustedCAFile: f.ca.CertFile, ClientCertAuth: true,
			PeerCertFile: cert, PeerKeyFile: key, PeerTrustedCAFile: f.ca.CertFile, PeerClientCertAuth: true}
	}
	if len(add) > 0 {
		members, err := restore.Members(restore.Config{InitialCluster: strings.Join(cluster, ","), ClientURLs: strings.Join(clients, ","),
			DataDirTemplate: filepath.Join(f.dir, "{name}.etcd"), ConfigDir: filepath.Join(f.dir, "conf"), TLS: tls})
		if err != nil {
			f.t.Fatal(err)
		}
		o.New = members
	}
	return o
}

// memberList returns the member list as name:voter|learner, sorted.
func memberList(t *testing.T, endpoints []string) []string {
	t.Helper()
	cli := etcdtest.NewClient(t, endpoints...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatalf("member list: %v", err)
	}
	var out []string
	for _, m := range resp.Members {
		role := "voter"
		if m.IsLearner {
			role = "learner"
		}
		out = append(out, fmt.Sprintf("%s:%s", m.Name, role))
	}
	slices.Sort(out)
	return out
}

func voters(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, n+":voter")
	}
	slices.Sort(out)
	return out
}

func TestScaleOutOneToThree(t *testing.T) {
	f := newFixture(t, 1)
	etcdtest.Put(t, f.old.Client(), "k", "v")
	o := f.options([]string{"B", "C"})
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := memberList(t, res.Endpoints), voters("m0", "B", "C"); !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	// Each new member holds the data, read from itself.
	for _, nm := range o.New {
		cli := etcdtest.NewClient(t, nm.ClientURLs[0])
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cli.Get(ctx, "k", clientv3.WithSerializable())
		cancel()
		if err != nil || len(resp.Kvs) != 1 {
			t.Errorf("read k from %s: %v %v", nm.Name, resp, err)
		}
	}
	again, err := Run(context.Background(), o)
	if err != nil || !again.NothingToDo {
		t.Errorf("rerun: %+v, %v; want nothing to do", again, err)
	}
	f.mu.Lock()
	said := f.said.String()
	f.mu.Unlock()
	for _, want := range []string{"start member B now, on its host, within the step timeout (30s)", "copy " + o.New[0].ConfigFile + " (or "} {
		if !strings.Contains(said, want) {
			t.Errorf("the operator was told %q, which lacks %q", said, want)
		}
	}
}

// TestReplaceWithLeaderAmongRemoved replaces three members by three; the
// leader is among them, so leadership moves to a new member before it goes.
func TestReplaceWithLeaderAmongRemoved(t *testing.T) {
	f := newFixture(t, 3)
	cli := f.old.Client()
	etcdtest.Put(t, cli, "k", "v")
	o := f.options([]string{"A", "B", "C"}, "m0", "m1", "m2")
	var events []Event
	o.Events = func(ev Event) { events = append(events, ev) }
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := memberList(t, res.Endpoints), voters("A", "B", "C"); !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	var removed []string
	moved := false
	for _, ev := range events {
		switch ev.Action {
		case MoveLeader:
			moved = moved || strings.HasPrefix(ev.Detail, "leadership moved to ")
		case Remove:
			removed = append(removed, ev.Member)
		}
	}
	if !moved || len(removed) != 3 {
		t.Errorf("events %+v: want leadership moved once and 3 removals", events)
	}
	newCli := etcdtest.NewClient(t, res.Endpoints...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if resp, err := newCli.Get(ctx, "k"); err != nil || len(resp.Kvs) != 1 {
		t.Errorf("read k from the new cluster: %v %v", resp, err)
	}
}

// TestResumeAfterInterruption stops a run between two steps and while it
// waits for a new member to start; each rerun carries on from the journal.
func TestResumeAfterInterruption(t *testing.T) {
	f := newFixture(t, 3)
	o := f.options([]string{"A"}, "m1")
	ctx, cancel := context.WithCancel(context.Background())
	o.Events = func(ev Event) {
		if ev.Action == AddLearner {
			cancel() // between add-learner and start
		}
	}
	if _, err := Run(ctx, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v, want it cancelled", err)
	}
	if got := memberList(t, f.old.Endpoints()); !slices.Contains(got, ":learner") { // not started: no name yet
		t.Fatalf("after the first run: %v, want A an unstarted learner", got)
	}
	p, done, file, err := Preview(context.Background(), o)
	if want := 6 + leaderMoves(p); err != nil || done != 1 || file != o.StateFile || len(p.Steps) != want {
		t.Fatalf("preview: %d of %v steps done in %s, %v; want 1 of %d from the journal", done, p, file, err, want)
	}
	ctx, cancel = context.WithCancel(context.Background())
	o.Events = nil
	f.beforeStart = func(string) bool { cancel(); return false } // interrupted while waiting for the start
	if _, err := Run(ctx, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("second run: %v, want it cancelled", err)
	}
	f.beforeStart = nil
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := memberList(t, res.Endpoints), voters("m0", "A", "m2"); !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
}

// leaderMoves counts the plan's move-leader steps: one when the member to
// replace happened to be elected leader.
func leaderMoves(p *Plan) int {
	if p == nil {
		return 0
	}
	n := 0
	for _, s := range p.Steps {
		if s.Action == MoveLeader {
			n++
		}
	}
	return n
}

// lossyConn applies every membership change and then reports a timeout, as
// when the reply is lost.
type lossyConn struct {
	Conn
	lost *int
}

func (c lossyConn) MemberAddAsLearner(ctx context.Context, peerAddrs []string) (*clientv3.MemberAddResponse, error) {
	if _, err := c.Conn.MemberAddAsLearner(ctx, peerAddrs); err != nil {
		return nil, err
	}
	*c.lost++
	return nil, context.DeadlineExceeded
}

func (c lossyConn) MemberPromote(ctx context.Context, id uint64) (*clientv3.MemberPromoteResponse, error) {
	if _, err := c.Conn.MemberPromote(ctx, id); err != nil {
		return nil, err
	}
	*c.lost++
	return nil, context.DeadlineExceeded
}

func (c lossyConn) MemberRemove(ctx context.Context, id uint64) (*clientv3.MemberRemoveResponse, error) {
	if _, err := c.Conn.MemberRemove(ctx, id); err != nil {
		return nil, err
	}
	*c.lost++
	return nil, context.DeadlineExceeded
}

func TestLostRepliesCountAsDone(t *testing.T) {
	f := newFixture(t, 3)
	o := f.options([]string{"A"}, "m2")
	lost := 0
	o.dial = func(endpoints []string) (Conn, error) {
		c, err := o.Connection.Dial(endpoints)
		return lossyConn{Conn: c, lost: &lost}, err
	}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if lost != 3 {
		t.Errorf("%d replies lost, want 3 (add, promote, remove)", lost)
	}
	if got, want := memberList(t, res.Endpoints), voters("m0", "m1", "A"); !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
}

// TestMemberThatNeverStarts: the learner is removed again, the journal says
// so, and the cluster is as before.
func TestMemberThatNeverStarts(t *testing.T) {
	f := newFixture(t, 3)
	o := f.options([]string{"A"}, "m0")
	o.StartCmd = "true"             // returns, and starts nothing
	o.StepTimeout = 8 * time.Second // etcd refuses changes for 5s after a start
	var progress bytes.Buffer
	o.Progress = &progress
	_, err := Run(context.Background(), o)
	var nme *NewMemberError
	if !errors.As(err, &nme) || nme.Member != "A" || nme.Action != Start || !nme.RemovedAgain {
		t.Fatalf("run: %v; want A not started and removed again", err)
	}
	if !strings.Contains(err.Error(), "not started within 8s") {
		t.Errorf("error %q does not say what was seen", err)
	}
	if !regexp.MustCompile(`waiting for member A to start: \ds of the step's 8s`).MatchString(progress.String()) {
		t.Errorf("progress %q does not show the wait for A", progress.String())
	}
	if got, want := memberList(t, f.old.Endpoints()), voters("m0", "m1", "m2"); !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	j, err := loadJournal(o.StateFile)
	if err != nil || j.State != StateFailed || !strings.Contains(j.Failure, "removed again") || j.Done != 0 {
		t.Errorf("journal %+v, %v; want failed, A removed again, to be added again", j, err)
	}
}

// TestAbortRemovesOurLearner leaves a learner behind with an interrupted
// run; abort removes it and nothing else.
func TestAbortRemovesOurLearner(t *testing.T) {
	f := newFixture(t, 3)
	o := f.options([]string{"A"}, "m0")
	ctx, cancel := context.WithCancel(context.Background())
	f.beforeStart = func(string) bool { cancel(); return false }
	if _, err := Run(ctx, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v, want it cancelled", err)
	}
	res, err := Abort(context.Background(), Options{Connection: o.Connection, StateFile: o.StateFile, StepTimeout: 30 * time.Second})
	if err != nil || !slices.Equal(res.Removed, []string{"A"}) || res.DataDirs["A"] != o.New[0].DataDir {
		t.Fatalf("abort: %+v, %v; want A removed, its data dir %s named", res, err, o.New[0].DataDir)
	}
	if got, want := memberList(t, f.old.Endpoints()), voters("m0", "m1", "m2"); !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	if _, err := Run(context.Background(), o); !errors.As(err, new(*StateError)) {
		t.Errorf("run after abort: %v, want a state error", err)
	}
}

func TestJournalOfAnotherPlanIsRefused(t *testing.T) {
	f := newFixture(t, 1)
	o := f.options([]string{"A"})
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	other := f.options([]string{"B"})
	other.StateFile = o.StateFile
	other.Connection.Client.Endpoints = f.old.Endpoints()
	_, err := Run(context.Background(), other)
	var se *StateError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "another migration") {
		t.Fatalf("run: %v, want the journal refused", err)
	}
}

// TestMutualTLS replaces a member of a cluster that requires client and
// peer certificates; the new members' configurations carry theirs.
func TestMutualTLS(t *testing.T) {
	f := newFixtureTLS(t, 3, etcdtest.NewCA(t))
	o := f.options([]string{"A"}, "m0")
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := o.Connection.Dial(res.Endpoints)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := conn.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range fromPB(list.Members) {
		got = append(got, fmt.Sprintf("%s:%v:%s", m.Name, m.IsLearner, m.ClientURLs[0][:8]))
	}
	slices.Sort(got)
	if want := []string{"A:false:https://", "m1:false:https://", "m2:false:https://"}; !slices.Equal(got, want) {
		t.Errorf("members %v, want %v", got, want)
	}
}

// TestResumeAfterOldMembersGone: a run stopped after the last old member was
// removed resumes through the new members that its journal knows.
func TestResumeAfterOldMembersGone(t *testing.T) {
	f := newFixture(t, 1)
	o := f.options([]string{"A"}, "m0")
	ctx, cancel := context.WithCancel(context.Background())
	o.Events = func(ev Event) {
		if ev.Action == Remove {
			cancel()
		}
	}
	if _, err := Run(ctx, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v, want it cancelled", err)
	}
	f.old.Members[0].Stop()
	o.Events = nil
	res, err := Run(context.Background(), o) // --endpoints still names m0 only
	if err != nil {
		t.Fatal(err)
	}
	if got, want := memberList(t, res.Endpoints), voters("A"); !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
}
