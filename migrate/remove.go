package migrate

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/etcdops/etcdops/internal/etcdclient"
)

// remove removes an old member through another member's endpoint, after
// moving leadership away if it leads; "member not found" counts as done.
func (r *runner) remove(ctx context.Context, name string) (bool, string, error) {
	old := r.j.oldMember(name)
	if old == nil {
		return false, "", fmt.Errorf("member %s is not in the journal", name)
	}
	id := parseID(old.ID)
	w := r.newWait(fmt.Sprintf("member %s to be removed", name))
	defer w.done()
	var seen string
	for attempt := 0; ; attempt++ {
		members, err := r.list(ctx)
		if err == nil {
			if byID(members, id) == nil {
				return attempt == 0, "removed", nil
			}
			if _, _, err := r.moveLeaderFrom(ctx, members, id, r.addedNames()); err != nil {
				return false, "", err
			}
			err = r.request(ctx, othersEndpoints(members, id), func(ctx context.Context, c Conn) error {
				_, err := c.MemberRemove(ctx, id)
				return err
			})
			switch {
			case err == nil, etcdclient.IsRPCError(err, rpctypes.ErrGRPCMemberNotFound):
				return false, "removed", nil
			default:
				seen = err.Error() // not enough started members, unhealthy, a lost reply: the member list decides
			}
		} else if ctx.Err() == nil {
			seen = err.Error()
		}
		if w.sleep(ctx, seen) != nil {
			return false, "", fmt.Errorf("not removed within %s: %s", r.o.StepTimeout, seen)
		}
	}
}

// addedNames are the new members that vote by now, as leadership candidates.
func (r *runner) addedNames() []string {
	var out []string
	for _, nm := range r.j.New {
		if nm.ID != "" {
			out = append(out, nm.Name)
		}
	}
	return out
}

// stop runs the stop command for an old member: after its removal, or,
// when the plan drains it, before: then it must still be a member, not
// lead, and stop answering before the step is done.
func (r *runner) stop(ctx context.Context, name string) (bool, string, error) {
	if r.o.StopCmd == "" {
		return false, "no stop command: a removed member stops by itself", nil
	}
	old := r.j.oldMember(name)
	drain := r.j.Plan.Drains(name)
	if drain {
		if old == nil {
			return false, "", fmt.Errorf("member %s is not in the journal", name)
		}
		members, err := r.list(ctx)
		if err != nil {
			return false, "", err
		}
		id := parseID(old.ID)
		if byID(members, id) == nil {
			return true, "already removed", nil
		}
		if r.down(ctx, old.ClientURLs) {
			return true, "already stopped", nil
		}
		// Leadership may have come back to it since the plan moved it.
		if _, _, err := r.moveLeaderFrom(ctx, members, id, r.addedNames()); err != nil {
			return false, "", err
		}
	}
	v := Vars{Name: name}
	if old != nil && len(old.PeerURLs) > 0 {
		v.PeerURL = old.PeerURLs[0]
	}
	if old != nil && len(old.ClientURLs) > 0 {
		v.ClientURL = old.ClientURLs[0]
	}
	if r.o.Files != nil {
		v.DataDir, v.Config, v.Env = r.o.Files(name)
	}
	if err := runShell(ctx, Expand(r.o.StopCmd, v)); err != nil {
		return false, "", fmt.Errorf("stop command: %w", err)
	}
	if !drain {
		return false, "stop command ran", nil
	}
	w := r.newWait(fmt.Sprintf("member %s to stop answering on %s", name, strings.Join(old.ClientURLs, ",")))
	defer w.done()
	for !r.down(ctx, old.ClientURLs) {
		if w.sleep(ctx, "") != nil {
			return false, "", fmt.Errorf("member %s still answers on %s %s after the stop command", name, strings.Join(old.ClientURLs, ","), r.o.StepTimeout)
		}
	}
	return false, "stopped, its clients moved to other members", nil
}

// down tells whether none of a member's client URLs accepts a connection
// within a second: a stopped member has closed its listeners. (A status
// request would wait for a connection to a stopped member until its
// deadline.)
func (r *runner) down(ctx context.Context, clientURLs []string) bool {
	var d net.Dialer
	for _, raw := range clientURLs {
		network, addr := "tcp", raw
		if u, err := url.Parse(raw); err == nil && u.Host != "" {
			addr = u.Host
			if u.Scheme == "unix" || u.Scheme == "unixs" {
				network, addr = "unix", u.Host+u.Path
			}
		}
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, network, addr)
		cancel()
		if err == nil {
			c.Close()
			return false
		}
		if ctx.Err() != nil {
			return false
		}
	}
	return true
}

// othersEndpoints are the client URLs of the members other than id.
func othersEndpoints(members []Member, id uint64) []string {
	var eps []string
	for _, m := range members {
		if m.ID != id && !m.IsLearner {
			eps = append(eps, m.ClientURLs...)
		}
	}
	return eps
}
