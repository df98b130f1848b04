package restore

import (
	"strings"

	"github.com/etcdops/etcdops/internal/memberconf"
)

// conf is the member's etcd settings.
func (p *Plan) conf(m Member) memberconf.Member {
	join := func(urls []string) string { return strings.Join(urls, ",") }
	return memberconf.Member{
		Name:                     m.Name,
		DataDir:                  m.DataDir,
		ListenClientURLs:         join(m.ListenClientURLs),
		AdvertiseClientURLs:      join(m.ClientURLs),
		ListenPeerURLs:           join(m.ListenPeerURLs),
		InitialAdvertisePeerURLs: join(m.PeerURLs),
		InitialCluster:           p.InitialCluster,
		InitialClusterState:      "new",
		InitialClusterToken:      p.Token,
		TLS:                      m.TLS,
	}
}

// ConfigYAML renders the member's configuration file for
// `etcdops serve --config-file` (and stock `etcd --config-file`).
func (p *Plan) ConfigYAML(m Member) []byte {
	return p.conf(m).YAML(
		"etcd member "+m.Name+" of a cluster restored from a snapshot by etcdops restore.",
		"Start it with: "+memberconf.ServeCommand(m.ConfigFile),
		"The initial-* settings are read on the first start only.")
}

// EnvFile renders the member's settings as ETCD_* variables, for a systemd
// EnvironmentFile= or a shell's `set -a; . FILE`.
func (p *Plan) EnvFile(m Member) []byte {
	return p.conf(m).EnvFile(
		"etcd member "+m.Name+" of a cluster restored from a snapshot by etcdops restore.",
		"ETCD_<FLAG> sets etcd's --<flag>; the initial-* settings are read on the first start only.")
}
