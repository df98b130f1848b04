package backup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Source is the member a snapshot is taken from.
type Source struct {
	Endpoint  string
	ID        uint64
	Name      string
	ClusterID uint64
	Version   string
	DBSize    int64
	// Revision is the member's current revision: how far it has applied.
	Revision int64
	IsLeader bool
}

// statusClient is the part of an etcd client PickSource uses.
type statusClient interface {
	Status(ctx context.Context, endpoint string) (*clientv3.StatusResponse, error)
	MemberList(ctx context.Context, opts ...clientv3.OpOption) (*clientv3.MemberListResponse, error)
}

// PickSource chooses the member to take a snapshot from among endpoints:
// the one named member when given (which must be a voting member), else
// the voting member that has applied the most, preferring a follower to
// the leader on a tie so that the leader keeps its disk and network for
// raft. Learners are never chosen: they may lag without bound.
func PickSource(ctx context.Context, cli statusClient, endpoints []string, member string, timeout time.Duration) (Source, error) {
	lctx, cancel := context.WithTimeout(ctx, timeout)
	members, err := cli.MemberList(lctx)
	cancel()
	if err != nil {
		return Source{}, fmt.Errorf("member list from %s: %w", strings.Join(endpoints, ","), err)
	}
	names := map[uint64]string{}
	named := false
	for _, m := range members.Members {
		names[m.ID] = m.Name
		if member != "" && m.Name == member {
			if m.IsLearner {
				return Source{}, fmt.Errorf("--member %s: is a learner; snapshots are taken from voting members", member)
			}
			if len(m.ClientURLs) == 0 {
				return Source{}, fmt.Errorf("--member %s: has no client URLs (not started yet?)", member)
			}
			named = true
			endpoints = m.ClientURLs[:1]
		}
	}
	if member != "" && !named {
		return Source{}, fmt.Errorf("--member %s: no such member in the cluster", member)
	}

	var best *Source
	var errs []error
	for _, ep := range endpoints {
		sctx, cancel := context.WithTimeout(ctx, timeout)
		st, err := cli.Status(sctx, ep)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ep, err))
			continue
		}
		if st.IsLearner {
			continue
		}
		s := Source{
			Endpoint: ep, ID: st.Header.MemberId, Name: names[st.Header.MemberId], ClusterID: st.Header.ClusterId,
			Version: st.Version, DBSize: st.DbSize, Revision: st.Header.Revision, IsLeader: st.Leader == st.Header.MemberId,
		}
		if best == nil || s.Revision > best.Revision || s.Revision == best.Revision && best.IsLeader && !s.IsLeader {
			best = &s
		}
	}
	if best == nil {
		if len(errs) > 0 {
			return Source{}, fmt.Errorf("no voting member reachable: %w", errors.Join(errs...))
		}
		return Source{}, fmt.Errorf("no voting member among %s", strings.Join(endpoints, ","))
	}
	return *best, nil
}
