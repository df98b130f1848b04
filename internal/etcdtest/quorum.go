package etcdtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// QuorumSample is one look at the cluster that found no quorum: a
// linearizable member list or read did not succeed within the sample timeout.
type QuorumSample struct {
	Time time.Time
	Err  error
}

// QuorumStats is what a QuorumWatcher saw.
type QuorumStats struct {
	Samples int
	// Lost are the samples without quorum.
	Lost []QuorumSample
	// Memberships are the distinct voting memberships seen, in order, each
	// as sorted names joined by ",".
	Memberships []string
	// MaxGap is the longest time between the starts of two samples.
	MaxGap time.Duration
}

func (s QuorumStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d samples, %d without quorum, longest gap %v, memberships %v",
		s.Samples, len(s.Lost), s.MaxGap.Round(time.Millisecond), s.Memberships)
	for i, l := range s.Lost {
		if i == 5 {
			fmt.Fprintf(&b, "\n  … %d more", len(s.Lost)-i)
			break
		}
		fmt.Fprintf(&b, "\n  %s: %v", l.Time.Format("15:04:05.000"), l.Err)
	}
	return b.String()
}

// QuorumWatcher samples a cluster's member list and health every 100ms and
// records every sample that finds no quorum.
type QuorumWatcher struct {
	cli     *clientv3.Client
	timeout time.Duration
	cancel  context.CancelFunc
	done    chan struct{}

	mu    sync.Mutex
	stats QuorumStats
}

// StartQuorumWatcher starts watching the cluster at endpoints through a
// client with AutoSyncInterval (and TLS when files is set). A sample that
// takes longer than timeout counts as without quorum. It stops at Stop or at
// the end of the test.
func StartQuorumWatcher(t testing.TB, endpoints []string, files *TLSFiles, timeout time.Duration) *QuorumWatcher {
	t.Helper()
	cli, err := clientv3.New(clientConfig(t, endpoints, files, "", "", 500*time.Millisecond))
	if err != nil {
		t.Fatalf("quorum watcher client of %v: %v", endpoints, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	q := &QuorumWatcher{cli: cli, timeout: timeout, cancel: cancel, done: make(chan struct{})}
	go q.run(ctx)
	t.Cleanup(func() { q.Stop() })
	return q
}

func (q *QuorumWatcher) run(ctx context.Context) {
	defer close(q.done)
	defer q.cli.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last time.Time
	for {
		now := time.Now()
		members, err := q.sample(ctx)
		if ctx.Err() != nil {
			return
		}
		q.mu.Lock()
		q.stats.Samples++
		if !last.IsZero() {
			q.stats.MaxGap = max(q.stats.MaxGap, now.Sub(last))
		}
		last = now
		if err != nil {
			q.stats.Lost = append(q.stats.Lost, QuorumSample{Time: now, Err: err})
		} else if n := len(q.stats.Memberships); n == 0 || q.stats.Memberships[n-1] != members {
			q.stats.Memberships = append(q.stats.Memberships, members)
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sample returns the voting members if the cluster answers a linearizable
// member list and a linearizable read (as `etcdctl endpoint health` does).
func (q *QuorumWatcher) sample(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	resp, err := q.cli.MemberList(ctx)
	if err != nil {
		return "", fmt.Errorf("member list: %w", err)
	}
	var names []string
	for _, m := range resp.Members {
		if !m.IsLearner {
			names = append(names, m.Name)
		}
	}
	slices.Sort(names)
	if _, err := q.cli.Get(ctx, "health"); err != nil {
		return "", fmt.Errorf("linearizable read: %w", err)
	}
	return strings.Join(names, ","), nil
}

// Stats returns what the watcher saw so far.
func (q *QuorumWatcher) Stats() QuorumStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.stats
	s.Lost = slices.Clone(s.Lost)
	s.Memberships = slices.Clone(s.Memberships)
	return s
}

// Stop stops the watcher and returns what it saw.
func (q *QuorumWatcher) Stop() QuorumStats {
	q.cancel()
	<-q.done
	return q.Stats()
}
