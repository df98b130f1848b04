package systemd

import (
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/pkg/v3/flags"
)

// Defaults of a Member; the ones that contain %s take the member name.
const (
	DefaultBinary   = "/usr/local/bin/etcdops"
	DefaultUser     = "etcd"
	DefaultGroup    = "etcd"
	DefaultDataDir  = "/var/lib/etcd/%s"
	DefaultUnitName = "etcdops-%s.service"
	DefaultEnvFile  = "/etc/etcdops/%s.env"
)

// Member describes an etcd member run by `etcdops serve` under systemd. The
// etcd settings are named and written as etcd's flags; an empty string (or
// false) leaves etcd's default, except for Name and DataDir, always written.
type Member struct {
	Name    string // member name; defaults to the short host name
	DataDir string // defaults to /var/lib/etcd/<name>
	WALDir  string

	// Comma-separated URLs, as etcd takes them.
	ListenClientURLs         string
	AdvertiseClientURLs      string
	ListenPeerURLs           string
	InitialAdvertisePeerURLs string

	InitialCluster      string // name=url,...
	InitialClusterState string // new or existing
	InitialClusterToken string

	CertFile           string
	KeyFile            string
	TrustedCAFile      string
	ClientCertAuth     bool
	PeerCertFile       string
	PeerKeyFile        string
	PeerTrustedCAFile  string
	PeerClientCertAuth bool

	// Env holds any other etcd setting as ETCD_<FLAG>=value.
	Env []string

	Binary   string // the etcdops binary; defaults to DefaultBinary
	User     string // defaults to DefaultUser
	Group    string // defaults to DefaultGroup
	UnitName string // defaults to etcdops-<name>.service
	EnvFile  string // defaults to /etc/etcdops/<name>.env
}

// SetDefaults fills the fields that are empty and have a default.
func (m *Member) SetDefaults() error {
	if m.Name == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("default member name: %w", err)
		}
		m.Name, _, _ = strings.Cut(host, ".")
	}
	def := func(field *string, value string) {
		if *field == "" {
			*field = value
		}
	}
	def(&m.DataDir, fmt.Sprintf(DefaultDataDir, m.Name))
	def(&m.Binary, DefaultBinary)
	def(&m.User, DefaultUser)
	def(&m.Group, DefaultGroup)
	def(&m.UnitName, fmt.Sprintf(DefaultUnitName, m.Name))
	def(&m.EnvFile, fmt.Sprintf(DefaultEnvFile, m.Name))
	return nil
}

// Files renders the member's unit (mode 0644) and environment file (mode
// 0600: it may hold secrets, which never go into the unit). m must have its
// defaults set.
func (m Member) Files() ([]File, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	unit, err := render("member.service.tmpl", m.unit())
	if err != nil {
		return nil, err
	}
	env, err := render("member.env.tmpl", struct {
		Member
		Env []envVar
	}{m, m.env()})
	if err != nil {
		return nil, err
	}
	return []File{
		{Path: path.Join(UnitDir, m.UnitName), Mode: 0o644, Data: unit},
		{Path: m.EnvFile, Mode: 0o600, Data: env},
	}, nil
}

// setting is an etcd flag of a Member field, with the field's value.
type setting struct{ flag, value string }

// settings lists the fields that are etcd settings, in env file order.
func (m Member) settings() []setting {
	return []setting{
		{"name", m.Name},
		{"data-dir", m.DataDir},
		{"wal-dir", m.WALDir},
		{"listen-client-urls", m.ListenClientURLs},
		{"advertise-client-urls", m.AdvertiseClientURLs},
		{"listen-peer-urls", m.ListenPeerURLs},
		{"initial-advertise-peer-urls", m.InitialAdvertisePeerURLs},
		{"initial-cluster", m.InitialCluster},
		{"initial-cluster-state", m.InitialClusterState},
		{"initial-cluster-token", m.InitialClusterToken},
		{"cert-file", m.CertFile},
		{"key-file", m.KeyFile},
		{"trusted-ca-file", m.TrustedCAFile},
		{"client-cert-auth", boolSetting(m.ClientCertAuth)},
		{"peer-cert-file", m.PeerCertFile},
		{"peer-key-file", m.PeerKeyFile},
		{"peer-trusted-ca-file", m.PeerTrustedCAFile},
		{"peer-client-cert-auth", boolSetting(m.PeerClientCertAuth)},
	}
}

func boolSetting(b bool) string {
	if b {
		return "true"
	}
	return ""
}

// envKey is the variable etcd reads for a flag.
func envKey(flag string) string { return flags.FlagToEnv("ETCD", flag) }

type envVar struct{ Key, Value string }

// env lists the environment file's variables: the fields that are set, in
// flag order, then Env sorted by name.
func (m Member) env() []envVar {
	var vars []envVar
	for _, s := range m.settings() {
		if s.value != "" {
			vars = append(vars, envVar{envKey(s.flag), strings.TrimSpace(s.value)})
		}
	}
	var extra []envVar
	for _, kv := range m.Env {
		k, v, _ := strings.Cut(kv, "=")
		extra = append(extra, envVar{k, v})
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i].Key < extra[j].Key })
	return append(vars, extra...)
}

// memberUnit is what the unit template needs beyond the Member.
type memberUnit struct {
	Member
	ReadWritePaths   []string
	StateDirectories []string // relative to /var/lib
	ProtectHome      string
}

func (m Member) unit() memberUnit {
	u := memberUnit{Member: m, ProtectHome: "yes"}
	for _, dir := range m.dataDirs() {
		u.ReadWritePaths = append(u.ReadWritePaths, dir)
		if rel, ok := stateDirectory(dir); ok {
			u.StateDirectories = append(u.StateDirectories, rel)
		}
	}
	// ProtectHome=yes would hide files that the member needs.
	for _, p := range append(m.dataDirs(), m.Binary, m.CertFile, m.KeyFile, m.TrustedCAFile,
		m.PeerCertFile, m.PeerKeyFile, m.PeerTrustedCAFile) {
		if under(p, "/home", "/root", "/run/user") {
			u.ProtectHome = "read-only"
		}
	}
	return u
}

// dataDirs are the directories the member writes to.
func (m Member) dataDirs() []string {
	if m.WALDir != "" && !under(m.WALDir, m.DataDir) {
		return []string{m.DataDir, m.WALDir}
	}
	return []string{m.DataDir}
}

// stateDirectory returns dir relative to /var/lib, if it is below it: systemd
// creates such a directory for the unit's user (StateDirectory=).
func stateDirectory(dir string) (string, bool) {
	return strings.CutPrefix(dir, "/var/lib/")
}

// under reports whether path p is one of dirs or inside one of them.
func under(p string, dirs ...string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// NextSteps lists the commands to run on the target system after Install.
func (m Member) NextSteps() []string {
	var steps []string
	if m.Group != m.User {
		steps = append(steps, fmt.Sprintf("getent group %s >/dev/null || groupadd --system %s", m.Group, m.Group))
	}
	group := "--user-group"
	if m.Group != m.User {
		group = "--gid " + m.Group
	}
	steps = append(steps, fmt.Sprintf("getent passwd %s >/dev/null || useradd --system %s --no-create-home --shell /usr/sbin/nologin %s",
		m.User, group, m.User))
	for _, dir := range m.dataDirs() {
		if _, ok := stateDirectory(dir); !ok {
			steps = append(steps, fmt.Sprintf("install -d -m 0700 -o %s -g %s %s", m.User, m.Group, dir))
		}
	}
	enable := "systemctl daemon-reload && systemctl enable --now " + m.UnitName
	if m.waitsForPeers() {
		enable = "systemctl daemon-reload && systemctl enable --now --no-block " + m.UnitName +
			"  # started once a quorum of members runs"
	}
	return append(steps, enable)
}

// waitsForPeers reports whether the member bootstraps a new cluster with
// other members, so that it is ready only once enough of them run.
func (m Member) waitsForPeers() bool {
	if m.InitialClusterState == "existing" {
		return false
	}
	cluster, err := types.NewURLsMap(m.InitialCluster)
	return err == nil && len(cluster) > 1
}
