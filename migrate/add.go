package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/etcdops/etcdops/internal/atomicfile"
	"github.com/etcdops/etcdops/internal/etcdclient"
	"github.com/etcdops/etcdops/internal/memberconf"
)

// addLearner adds nm as a learner, unless a member has its peer URL
// already (a run before, or an add whose reply was lost), and writes its
// configuration.
func (r *runner) addLearner(ctx context.Context, nm *NewMember) (bool, string, error) {
	members, err := r.list(ctx)
	if err != nil {
		return false, "", err
	}
	already := true
	m := byPeerURL(members, nm.PeerURL)
	w := r.newWait(fmt.Sprintf("learner %s to be added", nm.Name))
	defer w.done()
	for m == nil {
		already = false
		var addErr error
		if err := r.request(ctx, r.endpoints, func(ctx context.Context, c Conn) error {
			_, addErr = c.MemberAddAsLearner(ctx, []string{nm.PeerURL})
			return nil
		}); err != nil {
			addErr = err
		}
		if etcdclient.IsRPCError(addErr, rpctypes.ErrGRPCTooManyLearners) {
			return false, "", fmt.Errorf("add learner: %w (another learner joined the cluster meanwhile)", addErr)
		}
		// The member list decides: an add whose reply was lost may have been
		// applied. etcd refuses changes for a few seconds after one
		// ("unhealthy cluster") until every voter has been connected for a while.
		members, err = r.list(ctx)
		if err == nil {
			m = byPeerURL(members, nm.PeerURL)
		}
		if m == nil && w.sleep(ctx, fmt.Sprint(errors.Join(addErr, err))) != nil {
			return false, "", fmt.Errorf("add learner within %s: %v", r.o.StepTimeout, errors.Join(addErr, err))
		}
	}
	nm.ID = hexID(m.ID)
	if err := r.j.save(r.path); err != nil {
		return false, "", err
	}
	ic, err := initialCluster(members, m.ID, nm.Name)
	if err != nil {
		return false, "", err
	}
	nm.InitialCluster = ic
	if err := r.writeConfig(nm); err != nil {
		return false, "", err
	}
	how := "added as learner " + nm.ID
	if already {
		how = "already a member: " + nm.ID
	}
	return already, fmt.Sprintf("%s; wrote %s and %s", how, nm.ConfigFile, nm.EnvFile), nil
}

// initialCluster is the initial-cluster a joining member must start with:
// every member of the list (etcd compares their peer URLs with its own),
// the new one under its name, as `etcdctl member add` prints it.
func initialCluster(members []Member, id uint64, name string) (string, error) {
	var parts []string
	for _, m := range members {
		n := m.Name
		if m.ID == id {
			n = name
		}
		if n == "" {
			return "", fmt.Errorf("member %x was added but never started: start or remove it first", m.ID)
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ","), nil
}

// conf is the new member's etcd settings.
func (r *runner) conf(nm *NewMember) memberconf.Member {
	c := memberconf.Member{Name: nm.Name, DataDir: nm.DataDir, InitialCluster: nm.InitialCluster, InitialClusterState: "existing"}
	for _, m := range r.o.New {
		if m.Name == nm.Name {
			c.ListenClientURLs, c.AdvertiseClientURLs = strings.Join(m.ListenClientURLs, ","), strings.Join(m.ClientURLs, ",")
			c.ListenPeerURLs, c.InitialAdvertisePeerURLs = strings.Join(m.ListenPeerURLs, ","), strings.Join(m.PeerURLs, ",")
			c.TLS = m.TLS
		}
	}
	if c.AdvertiseClientURLs == "" {
		c.ListenClientURLs, c.AdvertiseClientURLs = nm.ClientURL, nm.ClientURL
		c.ListenPeerURLs, c.InitialAdvertisePeerURLs = nm.PeerURL, nm.PeerURL
	}
	return c
}

func (r *runner) writeConfig(nm *NewMember) error {
	c := r.conf(nm)
	header := []string{
		fmt.Sprintf("etcd member %s joining cluster %s, written by etcdops migrate.", nm.Name, r.j.ClusterID),
		"Start it with: " + memberconf.ServeCommand(nm.ConfigFile),
		"The initial-* settings are read on the first start only.",
	}
	for path, data := range map[string][]byte{nm.ConfigFile: c.YAML(header...), nm.EnvFile: c.EnvFile(header[0], header[2])} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

func (r *runner) vars(nm *NewMember) Vars {
	return Vars{Name: nm.Name, Config: nm.ConfigFile, Env: nm.EnvFile, DataDir: nm.DataDir, PeerURL: nm.PeerURL, ClientURL: nm.ClientURL,
		StaleDataDir: nm.StaleDataDir}
}
