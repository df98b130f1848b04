package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/objtest"
	"github.com/etcdops/etcdops/internal/pitrtest"
	"github.com/etcdops/etcdops/pitr"
)

// End-to-end tests of point-in-time recovery with real processes: stock
// etcd clusters as the source, `etcdops schedule --pitr` streaming their
// changes (zstd and age) to MinIO, fake-gcs-server and Azurite, 1,000
// writes/s of puts, deletes, multi-key transactions and keys on leases that
// expire, a compaction every 2 s to a revision already logged (as
// kube-apiserver compacts), and `etcdops restore` to revisions, to a time
// and to the log's end, each compared key by key with the source's
// keyspace read at that revision while it still had it.

// pitrLoadRate is the writes a second of the load on the source.
const pitrLoadRate = 1000

// pitrSource is a source cluster under load and compaction, the
// schedule process logging it, and the keyspaces read along the way.
type pitrSource struct {
	t        *testing.T
	rnd      *rand.Rand
	cli      *clientv3.Client
	eps      []string
	env      []string
	identity string // the age identity file
	ids      []age.Identity
	load     *pitrtest.Load
	states   []pitrtest.State
	sched    *etcdtest.Process
	down     bool // the schedule was killed on purpose
}

func newPITRSource(t *testing.T, seed uint64, eps []string, env []string) *pitrSource {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "backup.age")
	if err := os.WriteFile(f, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &pitrSource{t: t, rnd: rand.New(rand.NewPCG(seed, seed)), cli: etcdtest.NewClient(t, eps...), eps: eps, env: env,
		identity: f, ids: []age.Identity{id}}
}

func (p *pitrSource) recipient() string { return p.ids[0].(*age.X25519Identity).Recipient().String() }

// startSchedule starts (or starts again) `etcdops schedule` with args.
func (p *pitrSource) startSchedule(args ...string) {
	p.t.Helper()
	if p.sched == nil {
		p.sched = &etcdtest.Process{Spec: etcdtest.MemberSpec{Name: "schedule"}, Binary: etcdtest.EtcdopsBin(p.t),
			Command: append([]string{"schedule", "--endpoints", strings.Join(p.eps, ",")}, args...), Env: p.env}
	}
	p.sched.StartRaw(p.t)
	p.down = false
}

// killSchedule kills the schedule process with SIGKILL.
func (p *pitrSource) killSchedule() {
	p.sched.Kill(p.t)
	p.down = true
}

// record reads the source's keyspace after a random 100 to 500 more
// operations of the load, n times.
func (p *pitrSource) record(n int) {
	p.t.Helper()
	for range n {
		at := p.load.Ops() + 100 + p.rnd.Int64N(400)
		etcdtest.Eventually(p.t, 30*time.Second, func() error {
			if err := p.load.Err(); err != nil {
				return etcdtest.Stop(err)
			}
			if p.sched != nil && !p.down && !p.sched.Running() {
				return etcdtest.Stop(fmt.Errorf("schedule exited:\n%s", p.sched.Output()))
			}
			if ops := p.load.Ops(); ops < at {
				return fmt.Errorf("%d operations of the load, waiting for %d", ops, at)
			}
			return nil
		})
		p.recordNow()
	}
}

// recordUntil records as record does until done, for at most a minute.
func (p *pitrSource) recordUntil(done func() bool) {
	p.t.Helper()
	for deadline := time.Now().Add(time.Minute); !done(); p.record(1) {
		if time.Now().After(deadline) {
			p.t.Fatalf("not done after a minute of load")
		}
	}
}

func (p *pitrSource) recordNow() pitrtest.State {
	p.t.Helper()
	s, err := pitrtest.ReadState(context.Background(), p.cli, 0)
	if err != nil {
		p.t.Fatal(err)
	}
	p.states = append(p.states, s)
	return s
}

// waitLogged waits until every store's log reaches the source's revision.
func (p *pitrSource) waitLogged(stores map[string]*backup.Store) int64 {
	p.t.Helper()
	rev := p.recordNow().Rev
	for tag, store := range stores {
		etcdtest.Eventually(p.t, 60*time.Second, func() error {
			last, err := pitr.LastLogged(context.Background(), store, tag)
			if err == nil && last < rev {
				err = fmt.Errorf("log %s reaches %d, want %d", tag, last, rev)
			}
			return err
		})
	}
	return rev
}

// pick returns n of the states read after revision from, at random, and
// each of must.
func (p *pitrSource) pick(n int, from int64, must ...pitrtest.State) []pitrtest.State {
	var in []pitrtest.State
	for _, s := range p.states {
		if s.Rev >= from && !slices.ContainsFunc(must, func(m pitrtest.State) bool { return m.Rev == s.Rev }) {
			in = append(in, s)
		}
	}
	p.rnd.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
	return append(must, in[:min(n-len(must), len(in))]...)
}

// stateAtTime picks a state whose revision the log received at an instant
// of its own (the next one later), so that --to-time that instant restores
// exactly it.
func (p *pitrSource) stateAtTime(l loggedLog) (pitrtest.State, time.Time) {
	p.t.Helper()
	order := p.rnd.Perm(len(p.states))
	for _, i := range order {
		s := p.states[i]
		at, ok := l.received[s.Rev]
		if next, more := l.received[s.Rev+1]; ok && s.Rev > l.first && (!more || next.After(at)) {
			return s, at
		}
	}
	p.t.Fatalf("no state of %d read at a revision the log received alone", len(p.states))
	return pitrtest.State{}, time.Time{}
}

var pointInTimeLine = regexp.MustCompile(`point in time: revision (\d+), from snapshot`)

// restoreAndCompare runs `etcdops restore` of tag in bucket to target (the
// flags --to-revision or --to-time and their value) into one member,
// starts it, and compares its keyspace at the restored revision with want
// (read from the source at that revision; with Rev 0, the source's
// keyspace at the restored revision is read now).
func (p *pitrSource) restoreAndCompare(bucket, tag string, want pitrtest.State, target ...string) {
	p.t.Helper()
	ctx := context.Background()
	dir := p.t.TempDir()
	specs := etcdtest.SpecsNamed(p.t, dir, "r0")
	args := append([]string{"restore", "--from", bucket, "--tag", tag, "--identity", p.identity,
		"--initial-cluster", specs[0].InitialCluster, "--client-urls", "r0=" + specs[0].ClientURL,
		"--data-dir-template", filepath.Join(dir, "{name}.etcd"), "--quiet"}, target...)
	out, errOut, code := runEtcdops(p.t, p.env, args...)
	m := pointInTimeLine.FindStringSubmatch(out)
	if code != 0 || m == nil {
		p.t.Fatalf("restore %v: exit %d\n%s%s", target, code, out, errOut)
	}
	rev, _ := strconv.ParseInt(m[1], 10, 64)
	if want.Rev == 0 {
		var err error
		if want, err = pitrtest.ReadState(ctx, p.cli, rev); err != nil {
			p.t.Fatal(err)
		}
	}
	r := etcdtest.StartEmbeddedSpecs(p.t, specs)
	defer r.Stop()
	got, err := pitrtest.ReadState(ctx, r.Client(), rev)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := pitrtest.SameState(got, want); err != nil {
		p.t.Fatalf("restore %s %v: %v", tag, target, err)
	}
	if err := pitrtest.CheckLeases(ctx, r.Client(), got); err != nil {
		p.t.Fatalf("restore %s %v: %v", tag, target, err)
	}
	p.t.Logf("restore %s %v: revision %d, %d keys as the source's", tag, target, rev, len(got.Kvs))
}

// verifyLog runs backup verify --pitr on tag of bucket: exit 0, no problem.
func (p *pitrSource) verifyLog(bucket, tag string) {
	p.t.Helper()
	out, errOut, code := runEtcdops(p.t, p.env, "backup", "verify", "--from", bucket, "--pitr", "--tag", tag, "--identity", p.identity)
	if code != 0 || !strings.Contains(out, "verified log of "+tag+": ") || !strings.Contains(out, ", 0 problems") {
		p.t.Fatalf("backup verify --pitr --tag %s: exit %d\n%s%s", tag, code, out, errOut)
	}
}

// TestPITRStockEtcd36 logs a 3-member stock etcd 3.6 cluster to MinIO with
// `schedule --pitr` under load and compaction; the schedule is killed -9
// while a segment upload is in flight (a slow proxy holds each upload for
// 100 ms at least) and started again. The log is contiguous, backup verify
// --pitr passes, and restores to five revisions (one read while no
// streamer ran, one before the kill), to a time and to the end of the log
// equal the source at each revision.
func TestPITRStockEtcd36(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.StartStockCluster(t, 3, "--unsafe-no-fsync") // not a durability test
	s3 := objtest.S3(t)
	bucket := s3.NewBucket(t)
	slow := objtest.Slow(t, bucket, 4<<20)
	store := pitrtest.OpenBucket(t, bucket)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed of the load and the targets: %d", seed)
	p := newPITRSource(t, seed, c.Endpoints(), s3.Env)
	started := time.Now()
	p.startSchedule("--cron", "@every 1h", "--to", slow.URL, "--tag", "t", "--compress", "--age-recipient", p.recipient(), "--pitr")
	p.load = pitrtest.StartLoad(t, p.cli, p.rnd.Uint64(), pitrLoadRate, 16)
	compactor := pitrtest.StartCompactor(t, p.cli, 2*time.Second, func(ctx context.Context) (int64, error) {
		return pitr.LastLogged(ctx, store, "t")
	})

	p.record(8 + p.rnd.IntN(10))
	// Killed while a segment upload is in flight: the proxy counts the
	// upload as it starts and holds its first bytes for 100 ms.
	uploads := slow.Uploading.Load()
	etcdtest.Eventually(t, 30*time.Second, func() error {
		if slow.Uploading.Load() == uploads {
			return fmt.Errorf("no upload started")
		}
		return nil
	})
	p.killSchedule()
	before := p.states[len(p.states)-1]
	loggedAtKill, err := pitr.LastLogged(ctx, store, "t")
	if err != nil {
		t.Fatal(err)
	}
	p.record(1 + p.rnd.IntN(3))
	outage := p.states[len(p.states)-1]
	p.startSchedule()
	p.record(15 + p.rnd.IntN(10))
	// Compaction passes the revisions read around the kill.
	p.recordUntil(func() bool { return compactor.Last() > outage.Rev })

	if err := p.load.Stop(); err != nil {
		t.Fatal(err)
	}
	end := p.waitLogged(map[string]*backup.Store{"t": store})
	compactions, err := compactor.Stop()
	l := readContiguousLog(t, store, "t", p.ids)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d operations (%.0f/s); log of %d segments (%d overlapping), revisions %d-%d; killed with %d logged, %d read while down; %d compactions, the last to %d",
		p.load.Ops(), p.load.Rate(), l.segments, l.overlaps, l.first, l.last, loggedAtKill, outage.Rev, compactions, compactor.Last())
	if outage.Rev <= loggedAtKill || l.last < end {
		t.Fatalf("the revision read while no streamer ran, %d, was logged before the kill (%d); or the log ends at %d, before %d",
			outage.Rev, loggedAtKill, l.last, end)
	}
	p.verifyLog(bucket, "t")

	for _, s := range p.pick(5, l.first, outage, before) {
		p.restoreAndCompare(bucket, "t", s, "--to-revision", fmt.Sprint(s.Rev))
	}
	s, at := p.stateAtTime(l)
	p.restoreAndCompare(bucket, "t", s, "--to-time", at.Format(time.RFC3339Nano))
	p.restoreAndCompare(bucket, "t", pitrtest.State{}, "--to-revision", "latest")

	// Before any snapshot was taken (the catch-up run's is named after
	// its slot, earlier): refused.
	early := started.Add(-time.Second).UTC().Format(time.RFC3339Nano)
	out, errOut, code := runEtcdops(t, p.env, "restore", "--from", bucket, "--tag", "t", "--identity", p.identity, "--to-time", early,
		"--initial-cluster", "r0=http://127.0.0.1:2380", "--data-dir-template", filepath.Join(t.TempDir(), "{name}.etcd"), "--dry-run")
	if code != 2 || !strings.Contains(errOut, "--to-time: "+early+" is outside the recoverable range") {
		t.Errorf("restore --to-time before the schedule started: exit %d, expected 2 and the recoverable range\n%s%s", code, out, errOut)
	}
}

// TestPITRStockEtcd35 logs a stock etcd 3.5 member with one schedule
// process running two --pitr jobs (a --config file), one to
// fake-gcs-server and one to Azurite, zstd and age, under load and
// compaction behind both logs; restores from each equal the source.
func TestPITRStockEtcd35(t *testing.T) {
	c := etcdtest.StartToolCluster(t, etcdtest.StockEtcd35, 1, "--unsafe-no-fsync")
	gcs, azure := objtest.GCS(t), objtest.Azure(t)
	buckets := map[string]string{"g": gcs.NewBucket(t), "a": azure.NewBucket(t)}
	stores := map[string]*backup.Store{}
	for tag, b := range buckets {
		stores[tag] = pitrtest.OpenBucket(t, b)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed of the load and the targets: %d", seed)
	p := newPITRSource(t, seed, c.Endpoints(), append(append([]string{}, gcs.Env...), azure.Env...))
	config := "jobs:\n"
	for tag, b := range buckets {
		config += fmt.Sprintf("  - {name: %s, cron: '@every 1h', to: '%s', tag: %s, compress: true, age-recipients: [%s], pitr: true}\n",
			tag, b, tag, p.recipient())
	}
	cf := filepath.Join(t.TempDir(), "jobs.yml")
	if err := os.WriteFile(cf, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p.startSchedule("--config", cf)
	p.load = pitrtest.StartLoad(t, p.cli, p.rnd.Uint64(), pitrLoadRate, 16)
	compactor := pitrtest.StartCompactor(t, p.cli, 2*time.Second, func(ctx context.Context) (int64, error) {
		var low int64
		for tag, store := range stores {
			last, err := pitr.LastLogged(ctx, store, tag)
			if err != nil {
				return 0, err
			}
			if low == 0 || last < low {
				low = last
			}
		}
		return low, nil
	})
	p.record(10 + p.rnd.IntN(6))
	p.recordUntil(func() bool { return compactor.Count() >= 2 })
	if err := p.load.Stop(); err != nil {
		t.Fatal(err)
	}
	p.waitLogged(stores)
	compactions, err := compactor.Stop()
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"g", "a"} {
		l := readContiguousLog(t, stores[tag], tag, p.ids)
		t.Logf("log %s: %d segments, revisions %d-%d; %d operations (%.0f/s), %d compactions, the last to %d",
			tag, l.segments, l.first, l.last, p.load.Ops(), p.load.Rate(), compactions, compactor.Last())
		p.verifyLog(buckets[tag], tag)
		s := p.pick(1, l.first)[0]
		p.restoreAndCompare(buckets[tag], tag, s, "--to-revision", fmt.Sprint(s.Rev))
	}
	p.restoreAndCompare(buckets["a"], "a", pitrtest.State{}, "--to-revision", "latest")
}
