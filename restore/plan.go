// Package restore writes fresh data dirs for the members of a new etcd
// cluster from one snapshot: a pure Plan from the inputs, then Run.
package restore

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/etcdops/etcdops/internal/memberconf"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
)

// NameVar is replaced by the member's name in paths.
const NameVar = "{name}"

// Defaults of a Config.
const (
	DefaultDataDirTemplate = "{name}.etcd"
	DefaultClientPort      = "2379"
)

// Config is what a restore is asked to produce, as the command's flags say it.
type Config struct {
	// InitialCluster is the new cluster as etcd takes it: name=peerURL,...
	// Each member appears once.
	InitialCluster string
	// Token is the new cluster's initial-cluster-token (NewToken makes a
	// fresh one): member and cluster IDs derive from it, so members of
	// different restores never mix.
	Token string
	// Name restores only that member, as on each of the cluster's hosts;
	// empty restores them all.
	Name string
	// ClientURLs are name=clientURL,...; a member not listed serves clients
	// on its peer URL's scheme and host with port 2379.
	ClientURLs string
	// DataDirTemplate is each member's data dir, with {name}; empty means
	// DefaultDataDirTemplate. Relative paths are made absolute.
	DataDirTemplate string
	// ConfigDir holds each member's <name>.yml and <name>.env; empty means
	// the directory that holds the member's data dir.
	ConfigDir string
	// RevisionBump and MarkCompacted are etcd's restore options: raise the
	// revision by RevisionBump and mark it compacted, so that watchers of
	// the old cluster cannot miss changes. Both or neither.
	RevisionBump  uint64
	MarkCompacted bool
	// TLS are certificate paths written into the members' configurations;
	// {name} is replaced by each member's name.
	TLS TLS
}

// TLS holds etcd's certificate settings for clients and peers.
type TLS = memberconf.TLS

// Field names an input of a restore. The command line maps each to its flag.
type Field string

// The inputs a ConfigError can be about.
const (
	FieldFrom            Field = "snapshot source"       // Source.From
	FieldSnapshot        Field = "snapshot name"         // Source.Snapshot, Source.Tag
	FieldTag             Field = "tag"                   // Source.Tag of a point in time
	FieldInitialCluster  Field = "initial cluster"       // Config.InitialCluster
	FieldToken           Field = "initial cluster token" // Config.Token
	FieldName            Field = "member name"           // Config.Name
	FieldClientURLs      Field = "client URLs"           // Config.ClientURLs
	FieldDataDirTemplate Field = "data dir template"     // Config.DataDirTemplate
	FieldConfigDir       Field = "config dir"            // Config.ConfigDir
	FieldMarkCompacted   Field = "mark compacted"        // Config.MarkCompacted with RevisionBump
	FieldCertFile        Field = "cert file"             // Config.TLS.CertFile
	FieldKeyFile         Field = "key file"              // Config.TLS.KeyFile
	FieldPeerCertFile    Field = "peer cert file"        // Config.TLS.PeerCertFile
	FieldPeerKeyFile     Field = "peer key file"         // Config.TLS.PeerKeyFile
)

// ErrWouldOverwrite: a data dir or config file of the restore exists (and
// differs), and moving it aside was not asked for; nothing was written.
var ErrWouldOverwrite = errors.New("restore never overwrites it")

// tlsFields are the Fields of the TLS settings, by etcd's names.
var tlsFields = map[string]Field{"cert-file": FieldCertFile, "key-file": FieldKeyFile,
	"peer-cert-file": FieldPeerCertFile, "peer-key-file": FieldPeerKeyFile}

// ConfigError is bad input: Field holds Value (empty when there is none to
// show), which is wrong for Reason. Nothing was read or written.
type ConfigError struct {
	Field         Field
	Value, Reason string
}

func (e *ConfigError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Reason)
}

func configErr(field Field, value, format string, args ...any) error {
	return &ConfigError{Field: field, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// Member is one member of the restored cluster and where its files go.
type Member struct {
	Name string `json:"name"`
	// ID is etcd's member ID: it derives from the peer URLs and the token.
	ID               string   `json:"id"`
	PeerURLs         []string `json:"peer_urls"`
	ClientURLs       []string `json:"client_urls"`
	ListenPeerURLs   []string `json:"listen_peer_urls"`
	ListenClientURLs []string `json:"listen_client_urls"`
	DataDir          string   `json:"data_dir"`
	ConfigFile       string   `json:"config_file"`
	EnvFile          string   `json:"env_file"`
	TLS              TLS      `json:"tls,omitzero"`
}

// Plan is what a restore writes: every member's identity and paths. It is
// a pure function of a Config (and the working directory).
type Plan struct {
	Token          string `json:"initial_cluster_token"`
	ClusterID      string `json:"cluster_id"`
	InitialCluster string `json:"initial_cluster"`
	// Members are the whole cluster, in --initial-cluster order.
	Members       []Member `json:"members"`
	RevisionBump  uint64   `json:"revision_bump,omitempty"`
	MarkCompacted bool     `json:"mark_compacted,omitempty"`
	// Only names the one member to restore; empty restores all.
	Only string `json:"only,omitempty"`
}

// Targets are the members whose data dirs the restore writes.
func (p *Plan) Targets() []Member {
	if p.Only == "" {
		return p.Members
	}
	for _, m := range p.Members {
		if m.Name == p.Only {
			return []Member{m}
		}
	}
	return nil
}

// NewToken returns a fresh initial-cluster-token: the restore time and
// random bits, so that no two restores share one.
func NewToken(now time.Time) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "etcd-restore-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

// NewPlan checks cfg and works out the members. Its errors are
// *ConfigError.
func NewPlan(cfg Config) (*Plan, error) {
	if cfg.Token == "" || strings.ContainsFunc(cfg.Token, isSpaceOrControl) {
		return nil, configErr(FieldToken, cfg.Token, "expected a non-empty token without spaces")
	}
	if (cfg.RevisionBump > 0) != cfg.MarkCompacted {
		return nil, configErr(FieldMarkCompacted, "", "expected together with a revision bump N > 0, as etcd requires")
	}
	members, err := Members(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Name != "" && !slices.ContainsFunc(members, func(m Member) bool { return m.Name == cfg.Name }) {
		return nil, configErr(FieldName, cfg.Name, "not a member of the initial cluster (%s)", strings.Join(names(members), ", "))
	}
	urlsmap := types.URLsMap{}
	for i := range members {
		m := &members[i]
		urls, _ := types.NewURLs(m.PeerURLs)
		urlsmap[m.Name] = urls
		m.ID = membership.NewMember(m.Name, urls, cfg.Token, nil).ID.String()
	}
	cl, err := membership.NewClusterFromURLsMap(zap.NewNop(), cfg.Token, urlsmap)
	if err != nil {
		return nil, configErr(FieldInitialCluster, cfg.InitialCluster, "%v", err)
	}
	p := &Plan{Token: cfg.Token, ClusterID: cl.ID().String(), InitialCluster: initialCluster(members),
		Members: members, RevisionBump: cfg.RevisionBump, MarkCompacted: cfg.MarkCompacted, Only: cfg.Name}
	return p, checkPaths(p.Targets())
}

// Members works out the members of cfg.InitialCluster as NewPlan does: their
// client and listen URLs, data dirs, configuration files and TLS paths, but
// no IDs (they derive from the token). Members that join an existing
// cluster (etcdops migrate) take their settings from it. Its errors are
// *ConfigError.
func Members(cfg Config) ([]Member, error) {
	members, err := parseCluster(cfg.InitialCluster)
	if err != nil {
		return nil, err
	}
	clients, err := parseClientURLs(cfg.ClientURLs, members)
	if err != nil {
		return nil, err
	}
	if missing, given := cfg.TLS.MissingPair(); missing != "" {
		return nil, configErr(tlsFields[missing], "", "expected with the %s, as etcd requires", tlsFields[given])
	}
	if tmpl := dataDirTemplate(cfg); !strings.Contains(tmpl, NameVar) && (cfg.Name == "" && len(members) > 1) {
		return nil, configErr(FieldDataDirTemplate, tmpl, "expected %s in it: it names the data dirs of %d members", NameVar, len(members))
	}
	for i := range members {
		m := &members[i]
		if c, ok := clients[m.Name]; ok {
			m.ClientURLs = []string{c}
		} else if m.ClientURLs, err = defaultClientURLs(m); err != nil {
			return nil, err
		}
		m.ListenPeerURLs = listenURLs(m.PeerURLs)
		m.ListenClientURLs = listenURLs(m.ClientURLs)
		if m.DataDir, m.ConfigFile, m.EnvFile, err = Paths(cfg, m.Name); err != nil {
			return nil, err
		}
		m.TLS = expandTLS(cfg.TLS, m.Name)
	}
	if err := checkClientURLs(members); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		return members, checkPaths(members)
	}
	return members, nil
}

func dataDirTemplate(cfg Config) string {
	if cfg.DataDirTemplate == "" {
		return DefaultDataDirTemplate
	}
	return cfg.DataDirTemplate
}

// Paths are member name's data dir and configuration files under cfg's
// DataDirTemplate and ConfigDir, as absolute paths.
func Paths(cfg Config, name string) (dataDir, configFile, envFile string, err error) {
	if dataDir, err = expandPath(FieldDataDirTemplate, dataDirTemplate(cfg), name); err != nil {
		return "", "", "", err
	}
	dir := cfg.ConfigDir
	if dir == "" {
		dir = filepath.Dir(dataDir)
	} else if dir, err = expandPath(FieldConfigDir, dir, name); err != nil {
		return "", "", "", err
	}
	return dataDir, filepath.Join(dir, name+".yml"), filepath.Join(dir, name+".env"), nil
}

// parseCluster parses name=peerURL,... Unlike etcd, which merges a name
// given twice into one member with two peer URLs, it refuses duplicates:
// they are far more often a typo than intended.
func parseCluster(s string) ([]Member, error) {
	if strings.TrimSpace(s) == "" {
		return nil, configErr(FieldInitialCluster, s, "expected name=peerURL,... for every member of the new cluster")
	}
	var members []Member
	seenURL := map[string]string{}
	for _, item := range strings.Split(s, ",") {
		name, raw, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || name == "" || raw == "" {
			return nil, configErr(FieldInitialCluster, s, "%q: expected name=peerURL", item)
		}
		if strings.ContainsFunc(name, isSpaceOrControl) || strings.ContainsAny(name, `/\`) {
			return nil, configErr(FieldInitialCluster, s, "member name %q: expected no spaces or slashes", name)
		}
		if slices.ContainsFunc(members, func(m Member) bool { return m.Name == name }) {
			return nil, configErr(FieldInitialCluster, s, "member %s is listed twice (give each member once, with one peer URL)", name)
		}
		u, err := checkURL(raw)
		if err != nil {
			return nil, configErr(FieldInitialCluster, s, "member %s: %v", name, err)
		}
		if other, dup := seenURL[u]; dup {
			return nil, configErr(FieldInitialCluster, s, "members %s and %s have the same peer URL %s", other, name, u)
		}
		seenURL[u] = name
		members = append(members, Member{Name: name, PeerURLs: []string{u}})
	}
	return members, nil
}

// parseClientURLs parses name=clientURL,... for members of the cluster.
func parseClientURLs(s string, members []Member) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, item := range strings.Split(s, ",") {
		name, raw, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || name == "" || raw == "" {
			return nil, configErr(FieldClientURLs, s, "%q: expected name=clientURL", item)
		}
		if !slices.ContainsFunc(members, func(m Member) bool { return m.Name == name }) {
			return nil, configErr(FieldClientURLs, s, "%s is not a member of the initial cluster", name)
		}
		if _, dup := out[name]; dup {
			return nil, configErr(FieldClientURLs, s, "member %s is listed twice", name)
		}
		u, err := checkURL(raw)
		if err != nil {
			return nil, configErr(FieldClientURLs, s, "member %s: %v", name, err)
		}
		out[name] = u
	}
	return out, nil
}

// checkClientURLs refuses client URLs that two members share, or that are
// a peer URL: members on one host need their own ports.
func checkClientURLs(members []Member) error {
	owner := map[string]string{}
	for _, m := range members {
		for _, u := range m.PeerURLs {
			owner[u] = m.Name + "'s peer URL"
		}
	}
	for _, m := range members {
		for _, u := range m.ClientURLs {
			if other, dup := owner[u]; dup {
				return configErr(FieldClientURLs, "", "member %s's client URL %s is also %s: give each member its own (name=URL,...)", m.Name, u, other)
			}
			owner[u] = m.Name + "'s client URL"
		}
	}
	return nil
}

// checkURL accepts what etcd accepts as a member URL and returns it as
// etcd will print it.
func checkURL(raw string) (string, error) {
	urls, err := types.NewURLs([]string{raw})
	if err != nil {
		return "", err
	}
	return urls[0].String(), nil
}

// defaultClientURLs is the peer URL with the client port.
func defaultClientURLs(m *Member) ([]string, error) {
	u, _ := url.Parse(m.PeerURLs[0])
	if u.Port() == DefaultClientPort {
		return nil, configErr(FieldClientURLs, "", "member %s: its peer URL has port %s, etcd's client port: give its client URL", m.Name, DefaultClientPort)
	}
	u.Host = net.JoinHostPort(u.Hostname(), DefaultClientPort)
	return []string{u.String()}, nil
}

// listenURLs returns the URLs to bind for advertised URLs: the same where
// the host is an IP address or localhost, else all interfaces on the port
// (etcd binds only addresses).
func listenURLs(urls []string) []string {
	var out []string
	for _, s := range urls {
		u, _ := url.Parse(s)
		if net.ParseIP(u.Hostname()) == nil && u.Hostname() != "localhost" {
			u.Host = net.JoinHostPort("0.0.0.0", u.Port())
		}
		out = append(out, u.String())
	}
	return out
}

// expandPath replaces {name} and makes the path absolute.
func expandPath(field Field, tmpl, name string) (string, error) {
	p := strings.ReplaceAll(tmpl, NameVar, name)
	if strings.ContainsFunc(p, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "", configErr(field, tmpl, "expected a path without control characters")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", configErr(field, tmpl, "%v", err)
	}
	return abs, nil
}

func expandTLS(t TLS, name string) TLS {
	for _, f := range []*string{&t.CertFile, &t.KeyFile, &t.TrustedCAFile, &t.PeerCertFile, &t.PeerKeyFile, &t.PeerTrustedCAFile} {
		if *f != "" {
			*f, _ = expandPath("", *f, name)
		}
	}
	return t
}

// checkPaths refuses targets whose files would overlap.
func checkPaths(targets []Member) error {
	seen := map[string]string{}
	for _, m := range targets {
		for _, p := range []string{m.DataDir, m.ConfigFile, m.EnvFile} {
			if other, dup := seen[p]; dup {
				return configErr(FieldDataDirTemplate, p, "members %s and %s would both write it", other, m.Name)
			}
			seen[p] = m.Name
		}
	}
	for _, a := range targets {
		for _, b := range targets {
			if a.Name != b.Name && strings.HasPrefix(a.DataDir, b.DataDir+string(filepath.Separator)) {
				return configErr(FieldDataDirTemplate, a.DataDir, "inside the data dir of %s", b.Name)
			}
			if strings.HasPrefix(a.ConfigFile, b.DataDir+string(filepath.Separator)) {
				return configErr(FieldConfigDir, a.ConfigFile, "inside the data dir of %s", b.Name)
			}
		}
	}
	return nil
}

func initialCluster(members []Member) string {
	var parts []string
	for _, m := range members {
		parts = append(parts, m.Name+"="+m.PeerURLs[0])
	}
	return strings.Join(parts, ",")
}

func names(members []Member) []string {
	var out []string
	for _, m := range members {
		out = append(out, m.Name)
	}
	return out
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }
