// Package memberconf renders one etcd member's settings: the YAML file of
// --config-file, the ETCD_* environment file and the command-line flags.
package memberconf

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"go.etcd.io/etcd/pkg/v3/flags"
)

// TLS holds etcd's certificate settings for clients and peers.
type TLS struct {
	CertFile           string `json:"cert_file,omitempty"`
	KeyFile            string `json:"key_file,omitempty"`
	TrustedCAFile      string `json:"trusted_ca_file,omitempty"`
	ClientCertAuth     bool   `json:"client_cert_auth,omitempty"`
	PeerCertFile       string `json:"peer_cert_file,omitempty"`
	PeerKeyFile        string `json:"peer_key_file,omitempty"`
	PeerTrustedCAFile  string `json:"peer_trusted_ca_file,omitempty"`
	PeerClientCertAuth bool   `json:"peer_client_cert_auth,omitempty"`
}

// MissingPair returns the first certificate given without its key, or key
// without its certificate, that etcd would refuse: the setting missing and
// the one given, by etcd's names ("key-file", "cert-file"); "" when none.
func (t TLS) MissingPair() (missing, given string) {
	for _, p := range []struct {
		cert, key, certName, keyName string
	}{{t.CertFile, t.KeyFile, "cert-file", "key-file"}, {t.PeerCertFile, t.PeerKeyFile, "peer-cert-file", "peer-key-file"}} {
		switch {
		case p.cert != "" && p.key == "":
			return p.keyName, p.certName
		case p.cert == "" && p.key != "":
			return p.certName, p.keyName
		}
	}
	return "", ""
}

// Member is one member's etcd settings, named and written as etcd's flags.
// An empty string (or false) leaves etcd's default and is not written.
type Member struct {
	Name    string
	DataDir string
	WALDir  string

	// Comma-separated URLs, as etcd takes them.
	ListenClientURLs         string
	AdvertiseClientURLs      string
	ListenPeerURLs           string
	InitialAdvertisePeerURLs string

	InitialCluster      string // name=url,...
	InitialClusterState string // new or existing
	InitialClusterToken string

	TLS TLS

	// Env holds other etcd settings as ETCD_<FLAG>=value. The environment
	// file writes them after the others, sorted by name; YAML and Flags do
	// not render them.
	Env []string
}

// Setting is one etcd flag and its value.
type Setting struct {
	Flag, Value string
	// Section is the YAML mapping that holds a TLS setting, whose key
	// there is Flag without "peer-".
	Section string
}

const (
	clientSection = "client-transport-security"
	peerSection   = "peer-transport-security"
)

// all lists every setting of m, set or not, in the order files show them.
func (m Member) all() []Setting {
	t := m.TLS
	return []Setting{
		{Flag: "name", Value: m.Name},
		{Flag: "data-dir", Value: m.DataDir},
		{Flag: "wal-dir", Value: m.WALDir},
		{Flag: "listen-client-urls", Value: m.ListenClientURLs},
		{Flag: "advertise-client-urls", Value: m.AdvertiseClientURLs},
		{Flag: "listen-peer-urls", Value: m.ListenPeerURLs},
		{Flag: "initial-advertise-peer-urls", Value: m.InitialAdvertisePeerURLs},
		{Flag: "initial-cluster", Value: m.InitialCluster},
		{Flag: "initial-cluster-state", Value: m.InitialClusterState},
		{Flag: "initial-cluster-token", Value: m.InitialClusterToken},
		{"cert-file", t.CertFile, clientSection},
		{"key-file", t.KeyFile, clientSection},
		{"trusted-ca-file", t.TrustedCAFile, clientSection},
		{"client-cert-auth", boolValue(t.ClientCertAuth), clientSection},
		{"peer-cert-file", t.PeerCertFile, peerSection},
		{"peer-key-file", t.PeerKeyFile, peerSection},
		{"peer-trusted-ca-file", t.PeerTrustedCAFile, peerSection},
		{"peer-client-cert-auth", boolValue(t.PeerClientCertAuth), peerSection},
	}
}

// FlagNames are the etcd flags that a Member's fields set.
func FlagNames() []string {
	var out []string
	for _, s := range (Member{}).all() {
		out = append(out, s.Flag)
	}
	return out
}

// Settings lists the settings that are set, in file order.
func (m Member) Settings() []Setting {
	var out []Setting
	for _, s := range m.all() {
		if s.Value != "" {
			out = append(out, s)
		}
	}
	return out
}

// isBool reports whether flag is one of the boolean settings.
func isBool(flag string) bool { return strings.HasSuffix(flag, "client-cert-auth") }

func boolValue(b bool) string {
	if b {
		return "true"
	}
	return ""
}

// YAML renders the settings as a configuration file for
// `etcdops serve --config-file` (and stock `etcd --config-file`), after
// header, whose lines are written as comments.
func (m Member) YAML(header ...string) []byte {
	var b bytes.Buffer
	writeComments(&b, header)
	sections := map[string][]Setting{}
	for _, s := range m.Settings() {
		if s.Section != "" {
			sections[s.Section] = append(sections[s.Section], s)
			continue
		}
		fmt.Fprintf(&b, "%s: %s\n", s.Flag, yamlValue(s))
	}
	for _, name := range []string{clientSection, peerSection} {
		if len(sections[name]) == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s:\n", name)
		for _, s := range sections[name] {
			fmt.Fprintf(&b, "  %s: %s\n", strings.TrimPrefix(s.Flag, "peer-"), yamlValue(s))
		}
	}
	return b.Bytes()
}

// yamlValue renders a value as a YAML scalar that reads back as that
// string, quoted where YAML would read something else; the booleans are
// YAML booleans.
func yamlValue(s Setting) string {
	if isBool(s.Flag) {
		return "true"
	}
	out, err := yaml.Marshal(s.Value)
	if err != nil {
		return fmt.Sprintf("%q", s.Value)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// EnvFile renders the settings as ETCD_* variables, for a systemd
// EnvironmentFile= or a shell's `set -a; . FILE`, after header, whose
// lines are written as comments. Env follows, sorted by name.
func (m Member) EnvFile(header ...string) []byte {
	var b bytes.Buffer
	writeComments(&b, header)
	for _, v := range m.EnvVars() {
		fmt.Fprintf(&b, "%s=%s\n", v.Key, QuoteEnv(v.Value))
	}
	return b.Bytes()
}

// EnvVar is one variable of an environment file.
type EnvVar struct{ Key, Value string }

// EnvVars lists the environment file's variables: the settings that are
// set, in file order, then Env sorted by name.
func (m Member) EnvVars() []EnvVar {
	var vars []EnvVar
	for _, s := range m.Settings() {
		vars = append(vars, EnvVar{EnvKey(s.Flag), s.Value})
	}
	var extra []EnvVar
	for _, kv := range m.Env {
		k, v, _ := strings.Cut(kv, "=")
		extra = append(extra, EnvVar{k, v})
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i].Key < extra[j].Key })
	return append(vars, extra...)
}

// Flags renders the settings as command-line arguments, as etcd and
// `etcdops systemd unit` take them: --flag value, and a bare --flag for the
// booleans that are true.
func (m Member) Flags() []string {
	var out []string
	for _, s := range m.Settings() {
		if isBool(s.Flag) {
			out = append(out, "--"+s.Flag)
			continue
		}
		out = append(out, "--"+s.Flag, s.Value)
	}
	return out
}

// EnvKey is the variable etcd reads for a flag.
func EnvKey(flag string) string { return flags.FlagToEnv("ETCD", flag) }

func writeComments(b *bytes.Buffer, lines []string) {
	for _, l := range lines {
		b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
}

// envEscaper escapes what is special inside double quotes, both for
// systemd's EnvironmentFile= and for a POSIX shell sourcing the file.
var envEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`)

// QuoteEnv returns v as an environment file value: bare if it has only
// characters that need no quoting, else double-quoted with escapes. v must
// not contain control characters.
func QuoteEnv(v string) string {
	if v != "" && strings.IndexFunc(v, needsQuote) < 0 {
		return v
	}
	return `"` + envEscaper.Replace(v) + `"`
}

func needsQuote(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("-_.,:/=@+%", r)
}

// ShellQuote quotes s for a POSIX shell where it needs quoting.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, needsQuote) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ServeCommand is the command line that starts a member from its
// configuration file.
func ServeCommand(configFile string) string {
	return "etcdops serve --config-file " + ShellQuote(configFile)
}
