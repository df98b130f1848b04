package restore

import (
	"bytes"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"

	"go.etcd.io/etcd/pkg/v3/flags"
)

// setting is one etcd flag of a member's configuration.
type setting struct {
	flag, value string
	// section is the YAML mapping that holds it, for TLS settings.
	section string
}

// settings lists the member's etcd settings in the order files show them.
func (p *Plan) settings(m Member) []setting {
	join := func(urls []string) string { return strings.Join(urls, ",") }
	s := []setting{
		{flag: "name", value: m.Name},
		{flag: "data-dir", value: m.DataDir},
		{flag: "listen-peer-urls", value: join(m.ListenPeerURLs)},
		{flag: "initial-advertise-peer-urls", value: join(m.PeerURLs)},
		{flag: "listen-client-urls", value: join(m.ListenClientURLs)},
		{flag: "advertise-client-urls", value: join(m.ClientURLs)},
		{flag: "initial-cluster", value: p.InitialCluster},
		{flag: "initial-cluster-token", value: p.Token},
		{flag: "initial-cluster-state", value: "new"},
	}
	t := m.TLS
	for _, opt := range []setting{
		{"cert-file", t.CertFile, "client-transport-security"},
		{"key-file", t.KeyFile, "client-transport-security"},
		{"trusted-ca-file", t.TrustedCAFile, "client-transport-security"},
		{"client-cert-auth", boolValue(t.ClientCertAuth), "client-transport-security"},
		{"peer-cert-file", t.PeerCertFile, "peer-transport-security"},
		{"peer-key-file", t.PeerKeyFile, "peer-transport-security"},
		{"peer-trusted-ca-file", t.PeerTrustedCAFile, "peer-transport-security"},
		{"peer-client-cert-auth", boolValue(t.PeerClientCertAuth), "peer-transport-security"},
	} {
		if opt.value != "" {
			s = append(s, opt)
		}
	}
	return s
}

func boolValue(b bool) string {
	if b {
		return "true"
	}
	return ""
}

// ConfigYAML renders the member's configuration file for
// `etcdops serve --config-file` (and stock `etcd --config-file`).
func (p *Plan) ConfigYAML(m Member) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# etcd member %s of a cluster restored from a snapshot by etcdops restore.\n", m.Name)
	fmt.Fprintf(&b, "# Start it with: etcdops serve --config-file %s\n", shellQuote(m.ConfigFile))
	b.WriteString("# The initial-* settings are read on the first start only.\n")
	sections := map[string][]setting{}
	for _, s := range p.settings(m) {
		if s.section != "" {
			sections[s.section] = append(sections[s.section], s)
			continue
		}
		fmt.Fprintf(&b, "%s: %s\n", s.flag, yamlScalar(s.value))
	}
	for _, name := range []string{"client-transport-security", "peer-transport-security"} {
		if len(sections[name]) == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s:\n", name)
		for _, s := range sections[name] {
			key := strings.TrimPrefix(s.flag, "peer-")
			value := yamlScalar(s.value)
			if s.value == "true" {
				value = "true"
			}
			fmt.Fprintf(&b, "  %s: %s\n", key, value)
		}
	}
	return b.Bytes()
}

// yamlScalar renders a string as a YAML scalar that reads back as that
// string, quoted where YAML would read something else.
func yamlScalar(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// EnvFile renders the member's settings as ETCD_* variables, for a systemd
// EnvironmentFile= or a shell's `set -a; . FILE`.
func (p *Plan) EnvFile(m Member) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# etcd member %s of a cluster restored from a snapshot by etcdops restore.\n", m.Name)
	b.WriteString("# ETCD_<FLAG> sets etcd's --<flag>; the initial-* settings are read on the first start only.\n")
	for _, s := range p.settings(m) {
		fmt.Fprintf(&b, "%s=%s\n", flags.FlagToEnv("ETCD", s.flag), quoteEnv(s.value))
	}
	return b.Bytes()
}

// envEscaper escapes what is special inside double quotes, both for
// systemd's EnvironmentFile= and for a POSIX shell.
var envEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`)

// quoteEnv returns v bare if it holds only characters that need no
// quoting, else double-quoted.
func quoteEnv(v string) string {
	if v != "" && !strings.ContainsFunc(v, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-_.,:/=@+%", r))
	}) {
		return v
	}
	return `"` + envEscaper.Replace(v) + `"`
}
