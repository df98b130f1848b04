package backup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/internal/etcdclient"
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

// PickSource chooses the member to take a snapshot from among endpoints:
// the one named member when given (which must be a voting member), else
// the voting member that has applied the most, preferring a follower to
// the leader on a tie so that the leader keeps its disk and network for
// raft. Learners are never chosen: they may lag without bound.
func PickSource(ctx context.Context, dial Dialer, endpoints []string, member string, timeout time.Duration) (Source, error) {
	cli, err := dial(endpoints...)
	if err != nil {
		return Source{}, err
	}
	defer cli.Close()
	var voters []Source
	var errs []error
	learners := 0
	for _, ep := range endpoints {
		s, err := status(ctx, cli, ep, timeout)
		switch {
		case err != nil:
			errs = append(errs, err)
		case s.learner:
			learners++
		default:
			voters = append(voters, s.Source)
		}
	}
	if len(voters) == 0 {
		if learners > 0 {
			return Source{}, fmt.Errorf("no voting member among %s: only learners answered", strings.Join(endpoints, ","))
		}
		return Source{}, fmt.Errorf("no voting member reachable: %w", errors.Join(errs...))
	}
	// Learners refuse the member list; a voter answers it.
	mcli, err := dial(voters[0].Endpoint)
	if err != nil {
		return Source{}, err
	}
	defer mcli.Close()
	lctx, cancel := context.WithTimeout(ctx, timeout)
	members, err := mcli.MemberList(lctx)
	cancel()
	if err != nil {
		return Source{}, fmt.Errorf("member list from %s: %w", voters[0].Endpoint, err)
	}
	names := map[uint64]string{}
	for _, m := range members.Members {
		names[m.ID] = m.Name
	}
	if member != "" {
		return namedSource(ctx, cli, members, member, timeout)
	}
	best := voters[0]
	for _, s := range voters[1:] {
		if s.Revision > best.Revision || s.Revision == best.Revision && best.IsLeader && !s.IsLeader {
			best = s
		}
	}
	best.Name = names[best.ID]
	return best, nil
}

// namedSource returns the member called name, which must be a voter.
func namedSource(ctx context.Context, cli *clientv3.Client, members *clientv3.MemberListResponse, name string, timeout time.Duration) (Source, error) {
	for _, m := range members.Members {
		if m.Name != name {
			continue
		}
		if m.IsLearner {
			return Source{}, inputErr(FieldMember, name, "is a learner; snapshots are taken from voting members")
		}
		if len(m.ClientURLs) == 0 {
			return Source{}, inputErr(FieldMember, name, "has no client URLs (not started yet?)")
		}
		s, err := status(ctx, cli, m.ClientURLs[0], timeout)
		if err != nil {
			return Source{}, fmt.Errorf("member %s: %w", name, err)
		}
		s.Name = name
		return s.Source, nil
	}
	return Source{}, inputErr(FieldMember, name, "no such member in the cluster")
}

type memberStatus struct {
	Source
	learner bool
}

func status(ctx context.Context, cli *clientv3.Client, ep string, timeout time.Duration) (memberStatus, error) {
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sctx, attempts := etcdclient.WithAttempts(sctx)
	st, err := cli.Status(sctx, ep)
	if err != nil {
		return memberStatus{}, fmt.Errorf("%s: %w", ep, attempts.Explain(err))
	}
	return memberStatus{learner: st.IsLearner, Source: Source{
		Endpoint: ep, ID: st.Header.MemberId, ClusterID: st.Header.ClusterId, Version: st.Version,
		DBSize: st.DbSize, Revision: st.Header.Revision, IsLeader: st.Leader == st.Header.MemberId,
	}}, nil
}
