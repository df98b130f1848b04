package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"go.uber.org/zap"

	"github.com/etcdops/etcdops/internal/etcdtest"
)

// BenchmarkMigrate is bench/migrate.sh: a 3-member stock etcd cluster (real
// fsync) restored from a snapshot of BENCH_DB_MB MiB, under 500 writes/s,
// migrated onto three `etcdops serve` members, once by `etcdops migrate run`
// and once by the same moves made with stock etcdctl as fast as etcd allows.
// It prints a markdown table; it runs once whatever b.N.
func BenchmarkMigrate(b *testing.B) {
	mib, err := strconv.Atoi(cmp.Or(os.Getenv("BENCH_DB_MB"), "1024"))
	if err != nil || mib <= 0 {
		b.Fatalf("BENCH_DB_MB=%q: want a size in MiB", os.Getenv("BENCH_DB_MB"))
	}
	work := b.TempDir()
	if d := os.Getenv("BENCH_DIR"); d != "" {
		if work, err = os.MkdirTemp(d, "migrate-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(work) })
	}
	snap := fillSnapshot(b, work, mib)
	st, err := os.Stat(snap)
	if err != nil {
		b.Fatal(err)
	}
	copyTime := loopbackCopy(b, snap, filepath.Join(work, "copy.db"))
	benchSay("snapshot %d MiB; plain copy over loopback %.1fs", st.Size()>>20, copyTime.Seconds())
	var results []migrateBench
	for _, method := range []string{"stock etcdctl", "etcdops migrate run"} {
		r := benchMigration(b, work, snap, method)
		benchSay("%s: %.1fs, %d failed writes, %d lost, catch-up %v", method, r.total.Seconds(), r.writes.Failed, r.lost, r.catchUp)
		results = append(results, r)
	}
	fmt.Println(migrateBenchTable(results, st.Size(), copyTime))
}

// migrateBench is what one migration took.
type migrateBench struct {
	method  string
	total   time.Duration
	writes  etcdtest.WriterStats
	lost    int
	catchUp []time.Duration // per new member: added as learner → promoted
	names   []string
}

// benchSay prints progress at once (a benchmark's log shows only at its end).
func benchSay(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func benchMigration(b *testing.B, work, snap, method string) migrateBench {
	dir := filepath.Join(work, strings.Fields(method)[0])
	if err := os.Mkdir(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	specs := etcdtest.SpecsNamed(b, dir, "a", "b", "c")
	for _, s := range specs {
		cmd := exec.Command(etcdtest.Tool(b, "etcdutl"), "snapshot", "restore", snap, "--name", s.Name, "--data-dir", s.DataDir,
			"--initial-cluster", s.InitialCluster, "--initial-cluster-token", s.Token, "--initial-advertise-peer-urls", s.PeerURL)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("restore %s: %v\n%s", s.Name, err, out)
		}
	}
	m := &migration{t: b, dir: dir, specs: map[string]etcdtest.MemberSpec{}}
	benchSay("%s: restored 3 members from the snapshot", method)
	m.startOld(specs, etcdtest.Tool(b, "etcd"))
	order := []string{"a", "b", "c"}
	leader := m.leader(order...)
	for i, n := range order { // the leader last, as etcdops does
		if n == leader {
			order = append(append(order[:i:i], order[i+1:]...), n)
			break
		}
	}
	adds := m.newMembers("A", "B", "C")
	newNames := []string{"A", "B", "C"}
	w, q := m.load()
	tl := watchPromotions(b, m, newNames)
	start := time.Now()
	switch method {
	case "stock etcdctl":
		stockMigration(b, m, order, newNames)
	default:
		r := m.migrate(m.args("run", adds, order, "--start-cmd="+m.startCmd(), "--stop-cmd="+m.stopCmd(), "--timeout=30m")...)
		if r.code != 0 {
			b.Fatalf("migrate run: %v", r)
		}
		benchSay("%s: each step, its health check included: %s", method, stepTimes(start, r.events))
	}
	res := migrateBench{method: method, total: time.Since(start), names: newNames}
	res.catchUp = tl.stop()
	res.writes = w.Stop()
	qs := q.Stop()
	benchSay("%s: writer %v; quorum %v", method, res.writes, qs)
	cli := etcdtest.NewClient(b, m.endpoints(newNames...)...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var lost *etcdtest.LostWritesError
	if err := w.Verify(ctx, cli); errors.As(err, &lost) {
		res.lost = len(lost.Lost)
	} else if err != nil {
		b.Fatal(err)
	}
	m.checkMembers(newNames...)
	m.killStarted()
	return res
}

// stepTimes lists how long each step of `migrate run -w json` took.
func stepTimes(start time.Time, events []event) string {
	var steps []string
	prev := start
	for _, ev := range events {
		ts, _ := ev["time"].(string)
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		steps = append(steps, fmt.Sprintf("%s %s %.1fs", ev["action"], ev["member"], t.Sub(prev).Seconds()))
		prev = t
	}
	return strings.Join(steps, ", ")
}

// stockMigration makes the moves with stock etcdctl, as a careful script
// would: for each old member, add a new one as a learner, start it, promote
// it as soon as etcd allows, remove the old one. Each etcdctl call is
// retried at once while etcd refuses it; a change whose reply was lost
// (etcdctl's 5s timeout) but that was applied counts as done, as the member
// list shows, or the retries would fail for ever ("Peer URLs already exists",
// "can only promote a learner member", "member not found").
func stockMigration(b *testing.B, m *migration, order, newNames []string) {
	current := append([]string(nil), order...)
	for i, old := range order {
		name := newNames[i]
		spec := m.specs[name]
		start := time.Now()
		var members []stockMember
		retry(b, "member add "+name, func() error {
			_, err := etcdtest.RunEtcdctl(b, m.endpoints(current...), "member", "add", name, "--learner", "--peer-urls="+spec.PeerURL)
			var lerr error
			if members, lerr = stockList(b, m, current); lerr == nil && stockByPeer(members, spec.PeerURL) != nil {
				return nil
			}
			return cmp.Or(err, lerr, errors.New("not in the member list after its add"))
		})
		id := stockByPeer(members, spec.PeerURL).ID
		var initial []string
		for _, mem := range members {
			n := mem.Name
			if mem.ID == id {
				n = name
			}
			initial = append(initial, n+"="+mem.PeerURLs[0])
		}
		added := time.Now()
		spec.DataDir = filepath.Join(m.dir, name+".etcd")
		spec.InitialCluster = strings.Join(initial, ",")
		spec.ClusterState = "existing"
		p := &etcdtest.Process{Spec: spec, Binary: etcdtest.EtcdopsBin(b), Command: []string{"serve"}}
		p.Start(b)
		m.appendPid(name, p.Pid())
		current = append(current, name)
		restarts := 0
		retry(b, "member promote "+name, func() error {
			if !p.Running() {
				// The peer it asked for the membership had not applied the
				// last changes yet (a voter promoted as soon as its raft log
				// matched can still be applying the database): start it again,
				// as systemd's Restart=on-failure would, at once.
				if restarts == 20 || !strings.Contains(p.Output(), "error validating peerURLs") {
					return etcdtest.Stop(fmt.Errorf("new member %s exited (%d restarts):\n%s", name, restarts, p.Output()))
				}
				restarts++
				benchSay("stock etcdctl: new member %s exited at its start: %s; restarting it", name, bootstrapError(p.Output()))
				os.RemoveAll(spec.DataDir)
				p = &etcdtest.Process{Spec: spec, Binary: etcdtest.EtcdopsBin(b), Command: []string{"serve"}}
				p.Start(b)
				m.appendPid(name, p.Pid())
				return errors.New("restarted")
			}
			_, err := etcdtest.RunEtcdctl(b, m.endpoints(current...), "member", "promote", strconv.FormatUint(id, 16))
			if err == nil {
				return nil
			}
			if members, lerr := stockList(b, m, current); lerr == nil && stockByPeer(members, spec.PeerURL) != nil && !stockByPeer(members, spec.PeerURL).IsLearner {
				return nil
			}
			return err
		})
		promoted := time.Now()
		var oldID uint64
		retry(b, "member list", func() (err error) {
			members, err = stockList(b, m, current)
			return err
		})
		for _, mem := range members {
			if mem.Name == old {
				oldID = mem.ID
			}
		}
		retry(b, "member remove "+old, func() error {
			_, err := etcdtest.RunEtcdctl(b, m.endpoints(current...), "member", "remove", strconv.FormatUint(oldID, 16))
			if err == nil {
				return nil
			}
			if members, lerr := stockList(b, m, current); lerr == nil && !slices.ContainsFunc(members, func(mem stockMember) bool { return mem.ID == oldID }) {
				return nil
			}
			return err
		})
		removed := time.Now()
		current = slices.DeleteFunc(current, func(n string) bool { return n == old })
		for _, p := range m.old.Procs { // systemctl stop: SIGTERM, wait
			if p.Spec.Name == old {
				p.Signal(b, syscall.SIGTERM)
				p.Wait(b, time.Minute)
			}
		}
		benchSay("stock etcdctl: add %s %.1fs, start and promote it %.1fs, remove %s %.1fs, stop it %.1fs", name, added.Sub(start).Seconds(),
			promoted.Sub(added).Seconds(), old, removed.Sub(promoted).Seconds(), time.Since(removed).Seconds())
	}
}

// bootstrapError is what a member's output says of its failed start.
func bootstrapError(out string) string {
	i := strings.LastIndex(out, "error validating peerURLs")
	if i < 0 {
		return ""
	}
	line, _, _ := strings.Cut(out[i:], "\n")
	if j := strings.LastIndex(line, "PeerURLs: "); j >= 0 {
		return "error validating peerURLs: " + line[j+len("PeerURLs: "):]
	}
	return line
}

type stockMember struct {
	ID        uint64   `json:"ID"`
	Name      string   `json:"name"`
	PeerURLs  []string `json:"peerURLs"`
	IsLearner bool     `json:"isLearner"`
}

// stockList is the member list through members at, as etcdctl shows it.
func stockList(b *testing.B, m *migration, at []string) ([]stockMember, error) {
	out, err := etcdtest.RunEtcdctl(b, m.endpoints(at...), "member", "list", "-w", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Members []stockMember `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("member list: %w\n%s", err, out)
	}
	return list.Members, nil
}

func stockByPeer(members []stockMember, peerURL string) *stockMember {
	for i, mem := range members {
		if slices.Contains(mem.PeerURLs, peerURL) {
			return &members[i]
		}
	}
	return nil
}

// retry calls f until it succeeds, for up to 10 minutes, and says every 10s
// what it is waiting for.
func retry(b *testing.B, what string, f func() error) {
	start, said := time.Now(), time.Now()
	etcdtest.Eventually(b, 10*time.Minute, func() error {
		err := f()
		if err != nil && time.Since(said) > 10*time.Second {
			benchSay("%s: still refused after %.0fs: %v", what, time.Since(start).Seconds(), err)
			said = time.Now()
		}
		return err
	})
}

// promotions records, for each new member (by peer URL), when it first
// appears as a learner and when as a voter.
type promotions struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	added  map[string]time.Time
	voting map[string]time.Time
	urls   []string
}

func watchPromotions(b *testing.B, m *migration, names []string) *promotions {
	cli, err := clientv3.New(clientv3.Config{Endpoints: m.old.Endpoints(), AutoSyncInterval: 500 * time.Millisecond,
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &promotions{cancel: cancel, done: make(chan struct{}), added: map[string]time.Time{}, voting: map[string]time.Time{}}
	for _, n := range names {
		p.urls = append(p.urls, m.specs[n].PeerURL)
	}
	go func() {
		defer close(p.done)
		defer cli.Close()
		for ctx.Err() == nil {
			sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := cli.MemberList(sctx, clientv3.WithSerializable())
			scancel()
			now := time.Now()
			if err == nil {
				p.mu.Lock()
				for _, mem := range resp.Members {
					u := mem.PeerURLs[0]
					if _, ok := p.added[u]; !ok {
						p.added[u] = now
					}
					if _, ok := p.voting[u]; !ok && !mem.IsLearner {
						p.voting[u] = now
					}
				}
				p.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return p
}

func (p *promotions) stop() []time.Duration {
	p.cancel()
	<-p.done
	var d []time.Duration
	for _, u := range p.urls {
		d = append(d, p.voting[u].Sub(p.added[u]))
	}
	return d
}

// fillSnapshot fills a stock etcd member (without fsync, which a fill does
// not need) with ~mib MiB of 3900-byte values and saves a snapshot of it.
func fillSnapshot(b *testing.B, work string, mib int) string {
	spec := etcdtest.SpecsNamed(b, filepath.Join(work, "fill"), "fill")
	p := &etcdtest.Process{Spec: spec[0], Binary: etcdtest.Tool(b, "etcd")}
	p.Spec.Extra = []string{"--unsafe-no-fsync", "--quota-backend-bytes=17179869184", "--log-level=warn"}
	p.Start(b)
	p.WaitHealthy(b, time.Minute)
	keys := mib * 256
	fill := exec.Command(etcdtest.Tool(b, "benchmark"), "put", "--endpoints", etcdtest.HostPort(b, spec[0].ClientURL),
		"--clients", "32", "--conns", "4", "--key-size", "16", "--val-size", "3900", "--total", strconv.Itoa(keys),
		"--key-space-size", strconv.Itoa(keys), "--sequential-keys")
	if out, err := fill.CombinedOutput(); err != nil {
		b.Fatalf("fill: %v\n%s", err, out)
	}
	snap := filepath.Join(work, "snap.db")
	etcdtest.Etcdctl(b, []string{spec[0].ClientURL}, "snapshot", "save", snap)
	p.Kill(b)
	os.RemoveAll(spec[0].DataDir)
	return snap
}

// loopbackCopy copies src to dst through a loopback TCP connection and an
// fsync, the physical limit of a learner's catch-up here, and returns the time.
func loopbackCopy(b *testing.B, src, dst string) time.Duration {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		f, err := os.Open(src)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		_, err = io.Copy(c, f)
		errc <- err
	}()
	c, err := l.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	f, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(dst)
	defer f.Close()
	if _, err := io.Copy(f, c); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func migrateBenchTable(rs []migrateBench, size int64, copyTime time.Duration) string {
	var sb strings.Builder
	mbps := func(d time.Duration) string {
		if d <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f", float64(size)/(1<<20)/d.Seconds())
	}
	fmt.Fprintf(&sb, "database %d MiB; plain copy over loopback (TCP + fsync): %.1fs, %s MiB/s\n\n", size>>20, copyTime.Seconds(), mbps(copyTime))
	fmt.Fprintf(&sb, "| method | total | failed writes | lost writes | writes/s | catch-up per learner (s, MiB/s) |\n|---|---|---|---|---|---|\n")
	for _, r := range rs {
		var cu []string
		for i, d := range r.catchUp {
			cu = append(cu, fmt.Sprintf("%s %.1fs %s", r.names[i], d.Seconds(), mbps(d)))
		}
		fmt.Fprintf(&sb, "| %s | %.1fs | %d | %d | %.0f | %s |\n", r.method, r.total.Seconds(), r.writes.Failed, r.lost, r.writes.Rate(), strings.Join(cu, "; "))
	}
	if len(rs) == 2 && rs[1].total > 0 {
		fmt.Fprintf(&sb, "\nratio etcdops / stock: %.2f× the stock script's time (goal ≤ 1.2×)\n", rs[1].total.Seconds()/rs[0].total.Seconds())
	}
	return sb.String()
}
