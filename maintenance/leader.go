package maintenance

import (
	"context"

	"github.com/etcdops/etcdops/internal/etcdclient"
	"github.com/etcdops/etcdops/internal/leadership"
)

// moveLeader hands leadership away from member id to the most caught-up
// voting member that answers (the one routine of the project for it,
// migrate's too) and returns the new leader's name.
func (r *runner) moveLeader(ctx context.Context, id uint64) (string, error) {
	lc := &leadership.Cluster{
		Dial: func(endpoints []string) (leadership.Conn, error) {
			cfg := r.o.Client
			cfg.Endpoints = endpoints
			cli, err := etcdclient.New(&cfg, r.lg)
			if err != nil {
				return nil, err
			}
			return cli, nil
		},
		RequestTimeout: r.o.RequestTimeout,
		Poll:           r.o.Poll,
	}
	for _, m := range r.members {
		lc.Members = append(lc.Members, leadership.Member{ID: m.ID, Name: m.Name, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
	}
	to, _, err := lc.Move(ctx, id, nil)
	if err != nil {
		return "", err
	}
	return lc.Name(to), nil
}
