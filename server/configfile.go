package server

import (
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/embed"
)

// fileOnlyKeys are the config file keys that etcd translates into Config
// fields itself (its unexported configJSON), beyond Config's own JSON names.
var fileOnlyKeys = []string{
	"listen-peer-urls", "listen-client-urls", "listen-client-http-urls",
	"initial-advertise-peer-urls", "advertise-client-urls",
	"cors", "host-whitelist", "client-transport-security", "peer-transport-security", "feature-gates",
}

// transportSecurityKeys are the keys of client- and peer-transport-security.
var transportSecurityKeys = []string{
	"cert-file", "key-file", "client-cert-file", "client-key-file", "client-cert-auth",
	"trusted-ca-file", "auto-tls", "allowed-cn", "allowed-hostname", "skip-client-san-verification",
}

// legacyKeys are keys of etcd's own sample configuration that etcd 3.6 no
// longer reads; they are accepted with a warning, as etcd silently accepts them.
var legacyKeys = []string{
	"discovery-fallback", "proxy", "proxy-failure-wait", "proxy-refresh-interval",
	"proxy-dial-timeout", "proxy-write-timeout", "proxy-read-timeout",
}

// urlKeys hold comma-separated URL lists. etcd exits the process when one
// does not parse; serve checks them first and reports an error instead.
var urlKeys = []string{
	"listen-peer-urls", "listen-client-urls", "listen-client-http-urls",
	"initial-advertise-peer-urls", "advertise-client-urls", "listen-metrics-urls",
}

// loadConfigFile reads etcd's YAML configuration file. Unlike etcd, which
// ignores keys it does not know, it refuses them: a misspelt key would
// otherwise leave a production member on a default.
func loadConfigFile(path string) (*embed.Config, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--config-file: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, nil, fmt.Errorf("config file %s: %w", path, oneLine(err))
	}
	legacy, err := checkConfigKeys(m)
	if err != nil {
		return nil, nil, fmt.Errorf("config file %s: %w", path, err)
	}
	ec, err := embed.ConfigFromFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config file %s: %w", path, oneLine(err))
	}
	var warnings []string
	for _, k := range legacy {
		warnings = append(warnings, fmt.Sprintf("config file key %q is no longer read by etcd 3.6; ignoring it", k))
	}
	return ec, warnings, nil
}

// checkConfigKeys refuses unknown keys and malformed URLs in a parsed file,
// and returns the legacy keys it holds.
func checkConfigKeys(m map[string]any) ([]string, error) {
	known := knownConfigKeys()
	var legacy []string
	for _, k := range sortedKeys(m) {
		switch lk := strings.ToLower(k); {
		case known[lk]:
		case slices.Contains(legacyKeys, lk) || slices.Contains(ignoredFlags, lk):
			legacy = append(legacy, k)
		default:
			return nil, fmt.Errorf("unknown key %q (etcd's keys are its flag names without the leading --; see 'etcdops serve --help')", k)
		}
	}
	for _, section := range []string{"client-transport-security", "peer-transport-security"} {
		v, ok := lookupFold(m, section)
		if !ok || v == nil {
			continue
		}
		sub, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: expected a mapping of %s", section, strings.Join(transportSecurityKeys, ", "))
		}
		for _, k := range sortedKeys(sub) {
			if !slices.Contains(transportSecurityKeys, strings.ToLower(k)) {
				return nil, fmt.Errorf("%s: unknown key %q, expected one of %s", section, k, strings.Join(transportSecurityKeys, ", "))
			}
		}
	}
	if v, ok := lookupFold(m, "log-level"); ok {
		if s, isString := v.(string); !isString || checkLogLevel(s) != nil {
			return nil, fmt.Errorf("log-level: %w", checkLogLevel(fmt.Sprint(v)))
		}
	}
	for _, key := range urlKeys {
		v, ok := lookupFold(m, key)
		if !ok || v == nil {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s: expected a comma-separated string of URLs, got %v", key, v)
		}
		if s == "" {
			continue
		}
		if _, err := types.NewURLs(strings.Split(s, ",")); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	return legacy, nil
}

// knownConfigKeys are the lower-cased keys etcd's config file decoder reads.
func knownConfigKeys() map[string]bool {
	known := map[string]bool{}
	t := reflect.TypeOf(embed.Config{})
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		known[strings.ToLower(name)] = true
	}
	for _, k := range fileOnlyKeys {
		known[k] = true
	}
	for _, k := range backupSettingKeys() {
		known["backup-"+k] = true
	}
	known[defragCronKey] = true
	return known
}

// lookupFold finds key the way encoding/json matches names: exactly, else
// case-insensitively.
func lookupFold(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// oneLine folds a multi-line error message onto one line.
func oneLine(err error) error {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if msg == err.Error() {
		return err
	}
	return fmt.Errorf("%s", msg)
}
