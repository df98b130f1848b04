package health

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/internal/etcdclient"
)

// Options say what Check checks.
type Options struct {
	// Client holds the endpoints and the connection settings (TLS, auth,
	// dial timeout) shared with etcdctl.
	Client etcdclient.Config
	// Cluster replaces the endpoints with every member's client URLs from
	// the member list, as `etcdctl endpoint health --cluster`.
	Cluster bool
	// Skip, with Cluster, leaves out the members it returns true for:
	// they are listed but not checked (members known to be down or not yet
	// serving, which would only cost Timeout).
	Skip func(Member) bool
	// Timeout bounds the check of each endpoint, dial included. Endpoints
	// are checked at once, so it bounds the whole check (twice it with
	// Cluster, which reads the member list first).
	Timeout time.Duration
	// Backups, when set, is searched for the newest snapshot tagged BackupTag
	// (any tag when empty); BackupURL names it in the report.
	Backups   BackupSource
	BackupURL string
	BackupTag string
	// Logger logs the client's internals; nil logs nothing.
	Logger *zap.Logger
	// Now returns the time; nil means time.Now.
	Now func() time.Time
}

// Check checks every endpoint concurrently and returns what it saw. An
// unreachable endpoint is in the report with its error; Check itself fails
// only when the options are unusable (e.g. unreadable TLS files).
func Check(ctx context.Context, o Options) (*Report, error) {
	if o.Timeout <= 0 {
		return nil, errors.New("health: expected a positive timeout")
	}
	lg := o.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	base, err := o.Client.ClientConfig(lg)
	if err != nil {
		return nil, fmt.Errorf("health: %w", err)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	start := time.Now()
	r := &Report{Time: now()}
	endpoints := o.Client.Endpoints
	if o.Cluster {
		eps, err := discover(ctx, base, o.Timeout, o.Skip)
		if err != nil {
			r.DiscoveryError = err.Error()
		} else {
			endpoints = eps
		}
	}

	results := make([]probeResult, len(endpoints))
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, o.Timeout)
			defer cancel()
			results[i] = probe(ctx, ep, base)
		})
	}
	if o.Backups != nil {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, o.Timeout)
			defer cancel()
			r.Backup = findBackup(ctx, o.Backups, o.BackupURL, o.BackupTag)
		})
	}
	wg.Wait()
	merge(r, results)
	r.Duration = time.Since(start)
	return r, nil
}

// discover returns the client URLs of every member but those skip returns
// true for, read from any endpoint. The read is serializable, so that it
// works without quorum.
func discover(ctx context.Context, base clientv3.Config, timeout time.Duration, skip func(Member) bool) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg := base
	cfg.Context = ctx
	cfg.DialTimeout = min(cfg.DialTimeout, timeout)
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("member list from %s: %w", strings.Join(base.Endpoints, ","), err)
	}
	defer cli.Close()
	resp, err := cli.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return nil, fmt.Errorf("member list from %s: %w", strings.Join(base.Endpoints, ","), err)
	}
	var eps []string
	seen := map[string]bool{}
	for _, m := range resp.Members {
		if skip != nil && skip(Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner}) {
			continue
		}
		for _, u := range m.ClientURLs {
			if !seen[u] {
				seen[u] = true
				eps = append(eps, u)
			}
		}
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("member list from %s: no member has a client URL", strings.Join(base.Endpoints, ","))
	}
	return eps, nil
}

// merge puts the endpoints' answers into r. The member list is the
// leader's when it answered, else the first member's that did; the alarms
// are those any member reported.
func merge(r *Report, results []probeResult) {
	var membersFrom *probeResult
	seen := map[Alarm]bool{}
	for i := range results {
		res := &results[i]
		r.Endpoints = append(r.Endpoints, res.Endpoint)
		if !res.Reachable {
			continue
		}
		if r.ClusterID == 0 {
			r.ClusterID = res.clusterID
		}
		if res.membersOK && (membersFrom == nil || res.IsLeader && !membersFrom.IsLeader) {
			membersFrom = res
		}
		r.AlarmsKnown = true
		for _, a := range res.alarms {
			if !seen[a] {
				seen[a] = true
				r.Alarms = append(r.Alarms, a)
			}
		}
	}
	if membersFrom != nil {
		r.Members = membersFrom.members
	}
}

// findBackup looks for the newest snapshot; a failure is part of the result.
func findBackup(ctx context.Context, src BackupSource, url, tag string) *Backup {
	b := &Backup{URL: url, Tag: tag}
	snap, err := src.Newest(ctx, tag)
	switch {
	case errors.Is(err, ErrNoSnapshot):
	case err != nil:
		b.Error = err.Error()
	default:
		b.Newest, b.Time = snap.Name, snap.Time
		if ls, ok := src.(LogSource); ok {
			end, found, err := ls.NewestLog(ctx, snap.Tag)
			switch {
			case err != nil:
				b.Error = fmt.Sprintf("log of %s: %v", snap.Tag, err)
			case found:
				b.Log = &end
			}
		}
	}
	return b
}
