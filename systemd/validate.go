package systemd

import (
	"flag"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"unicode"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcdops/etcdops/internal/memberconf"
)

// ValidationError names the setting whose value is wrong and what was
// expected; the command line names its flag.
type ValidationError struct {
	Setting  string // as etcd names it (its flag without dashes, its YAML key)
	Value    string
	Expected string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("%s %q: expected %s", e.Setting, e.Value, e.Expected)
}

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	userRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}$`)
	unitNameRE = regexp.MustCompile(`^[A-Za-z0-9:_.-]{1,247}\.service$`)
	unitPathRE = regexp.MustCompile(`^/[A-Za-z0-9._/@+:-]*$`)
	envKeyRE   = regexp.MustCompile(`^ETCD_[A-Z0-9_]+$`)
)

// Validate checks m, whose defaults must be set, and returns a
// *ValidationError for the first field that is wrong.
func (m Member) Validate() error {
	bad := func(flag, value, expected string) error {
		return &ValidationError{Setting: flag, Value: value, Expected: expected}
	}
	if !nameRE.MatchString(m.Name) {
		return bad("name", m.Name, "a member name of at most 63 letters, digits, '.', '_' or '-', starting with a letter or digit (the default is the short host name)")
	}
	for _, p := range []struct{ flag, path string }{{"data-dir", m.DataDir}, {"wal-dir", m.WALDir}, {"binary", m.Binary}} {
		if p.path == "" && p.flag == "wal-dir" {
			continue
		}
		if err := checkPath(p.path, true, true); err != "" {
			return bad(p.flag, p.path, err)
		}
	}
	for _, s := range []struct{ flag, value string }{
		{"listen-client-urls", m.ListenClientURLs},
		{"advertise-client-urls", m.AdvertiseClientURLs},
		{"listen-peer-urls", m.ListenPeerURLs},
		{"initial-advertise-peer-urls", m.InitialAdvertisePeerURLs},
	} {
		if s.value == "" {
			continue
		}
		if _, err := types.NewURLs(strings.Split(s.value, ",")); err != nil {
			return bad(s.flag, s.value, "comma-separated URLs like https://10.0.0.1:2379: "+err.Error())
		}
	}
	if m.ListenClientURLs != "" && m.AdvertiseClientURLs == "" {
		return bad("advertise-client-urls", "", "the client URLs to advertise, which etcd requires with --listen-client-urls")
	}
	if m.InitialCluster != "" {
		cluster, err := types.NewURLsMap(m.InitialCluster)
		if err != nil {
			return bad("initial-cluster", m.InitialCluster, "name=peer-URL pairs like a=https://10.0.0.1:2380,b=https://10.0.0.2:2380: "+err.Error())
		}
		if _, ok := cluster[m.Name]; !ok {
			return bad("initial-cluster", m.InitialCluster, fmt.Sprintf("an entry for this member, %s=<its peer URL>", m.Name))
		}
	}
	switch m.InitialClusterState {
	case "", "new", "existing":
	default:
		return bad("initial-cluster-state", m.InitialClusterState, `"new" or "existing"`)
	}
	if hasControl(m.InitialClusterToken) {
		return bad("initial-cluster-token", m.InitialClusterToken, "no control characters")
	}
	for _, p := range []struct{ flag, path string }{
		{"cert-file", m.CertFile}, {"key-file", m.KeyFile}, {"trusted-ca-file", m.TrustedCAFile},
		{"peer-cert-file", m.PeerCertFile}, {"peer-key-file", m.PeerKeyFile}, {"peer-trusted-ca-file", m.PeerTrustedCAFile},
	} {
		if p.path == "" {
			continue
		}
		if err := checkPath(p.path, false, true); err != "" {
			return bad(p.flag, p.path, err)
		}
	}
	tls := memberconf.TLS{CertFile: m.CertFile, KeyFile: m.KeyFile, PeerCertFile: m.PeerCertFile, PeerKeyFile: m.PeerKeyFile}
	if missing, given := tls.MissingPair(); strings.HasSuffix(missing, "key-file") {
		return bad(missing, "", "the key of --"+given)
	} else if missing != "" {
		return bad(missing, "", "the certificate of --"+given)
	}
	if err := m.validateEnv(); err != nil {
		return err
	}
	if !userRE.MatchString(m.User) {
		return bad("user", m.User, "a user name of letters, digits, '_', '.' or '-'")
	}
	if !userRE.MatchString(m.Group) {
		return bad("group", m.Group, "a group name of letters, digits, '_', '.' or '-'")
	}
	if !unitNameRE.MatchString(m.UnitName) {
		return bad("unit-name", m.UnitName, "a unit name like etcd.service: letters, digits, ':', '_', '.' or '-' and .service")
	}
	if err := checkPath(m.EnvFile, true, false); err != "" {
		return bad("env-file", m.EnvFile, err)
	}
	return nil
}

// checkPath returns what was expected of path p, or "" if it is fine. A path
// inUnit appears in the unit, where only plain characters are safe; a path
// inService is opened by etcd, which PrivateTmp=yes keeps out of /tmp.
func checkPath(p string, inUnit, inService bool) string {
	switch {
	case !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/":
		return "a clean absolute path, without ., .. or a trailing /"
	case inUnit && !unitPathRE.MatchString(p):
		return "a path of letters, digits and ._/@+:- only"
	case hasControl(p):
		return "a path without control characters"
	case inService && under(p, "/tmp", "/var/tmp"):
		return "a path outside /tmp and /var/tmp, which the unit makes private (PrivateTmp=yes)"
	}
	return ""
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// validateEnv checks the ETCD_* variables of --env.
func (m Member) validateEnv() error {
	own := map[string]string{}
	for _, flag := range memberconf.FlagNames() {
		own[memberconf.EnvKey(flag)] = flag
	}
	seen := map[string]bool{}
	for _, kv := range m.Env {
		k, v, ok := strings.Cut(kv, "=")
		shown := kv
		if ok {
			shown = k + "=..." // the value may be a secret
		}
		bad := func(expected string) error {
			return &ValidationError{Setting: "env", Value: shown, Expected: expected}
		}
		switch {
		case !ok || !envKeyRE.MatchString(k):
			return bad("KEY=VALUE with an upper-case KEY starting with ETCD_, like ETCD_SNAPSHOT_COUNT=10000")
		case own[k] != "":
			return bad(fmt.Sprintf("no %s: it is set by --%s", k, own[k]))
		case k == memberconf.EnvKey("config-file"):
			return bad("no " + k + ": with a config file etcd ignores every other ETCD_* variable")
		case !etcdEnv()[k]:
			return bad("ETCD_ and the name of an etcd flag in upper case with _ for -, like ETCD_SNAPSHOT_COUNT")
		case seen[k]:
			return bad(k + " once")
		case v == "":
			return bad("a value: etcd ignores empty variables")
		case hasControl(v):
			return bad("a value without control characters")
		}
		seen[k] = true
	}
	return nil
}

// etcdEnv returns the variables etcd reads: ETCD_ and the name of a flag of
// etcd (the ones of embed.Config and of etcdmain that configure the server).
var etcdEnv = sync.OnceValue(func() map[string]bool {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	embed.NewConfig().AddFlags(fs)
	known := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { known[memberconf.EnvKey(f.Name)] = true })
	for _, name := range []string{"initial-cluster-state", "discovery-fallback", "v2-deprecation"} {
		known[memberconf.EnvKey(name)] = true
	}
	return known
})
