package systemd

import "strings"

// envEscaper escapes what is special inside double quotes, both for systemd's
// EnvironmentFile= and for a POSIX shell sourcing the file.
var envEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`)

// quoteEnv returns v as an environment file value: bare if it has only
// characters that need no quoting, else double-quoted with escapes.
// v must not contain control characters (Validate refuses them).
func quoteEnv(v string) string {
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
