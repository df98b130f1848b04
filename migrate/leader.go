package migrate

import (
	"context"
	"fmt"

	"github.com/etcdops/etcdops/internal/leadership"
)

// moveLeader moves leadership away from an old member that leads, to the
// most caught up of the step's candidates.
func (r *runner) moveLeader(ctx context.Context, s Step) (bool, string, error) {
	old := r.j.oldMember(s.Member)
	if old == nil {
		return false, "", fmt.Errorf("member %s is not in the journal", s.Member)
	}
	members, err := r.list(ctx)
	if err != nil {
		return false, "", err
	}
	return r.moveLeaderFrom(ctx, members, parseID(old.ID), s.To)
}

// moveLeaderFrom moves leadership from member id, if it leads, to the most
// caught up voter among names (any other voter when none of those answers).
func (r *runner) moveLeaderFrom(ctx context.Context, members []Member, id uint64, names []string) (bool, string, error) {
	c := r.leadership(members)
	w := r.newWait("leadership to move away from " + c.Name(id))
	defer w.done()
	c.Sleep = w.sleep
	leader, moved, err := c.Move(ctx, id, names)
	if err != nil {
		return false, "", err
	}
	if !moved {
		return true, "not the leader", nil
	}
	return false, "leadership moved to " + c.Name(leader), nil
}

// leadership is the cluster of members as package leadership asks it: the
// member drained for the step that runs is down.
func (r *runner) leadership(members []Member) *leadership.Cluster {
	c := &leadership.Cluster{Down: r.stopped, RequestTimeout: r.o.Connection.Timeout,
		Dial: func(endpoints []string) (leadership.Conn, error) {
			conn, err := r.dial(endpoints)
			if err != nil {
				return nil, err
			}
			return conn, nil
		}}
	for _, m := range members {
		c.Members = append(c.Members, leadership.Member{ID: m.ID, Name: m.Name, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
	}
	return c
}
