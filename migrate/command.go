package migrate

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"

	"github.com/etcdops/etcdops/internal/memberconf"
)

// Placeholders are what start and stop command templates may hold.
// {stale-data-dir} is the data dir of a new member that an earlier attempt
// left after it was removed again, for a start command on another host to
// move aside; it is empty otherwise.
var Placeholders = []string{"{name}", "{config}", "{env}", "{data-dir}", "{peer-url}", "{client-url}", "{stale-data-dir}"}

var placeholderRE = regexp.MustCompile(`\{[^{}\s]*\}`)

// CheckTemplate refuses a command template with an unknown placeholder;
// input names it in the error (start-cmd or stop-cmd).
func CheckTemplate(input, tmpl string) error {
	for _, p := range placeholderRE.FindAllString(tmpl, -1) {
		if !slices.Contains(Placeholders, p) {
			return inputErr(input, tmpl, "unknown placeholder %s: expected only %s", p, strings.Join(Placeholders, " "))
		}
	}
	return nil
}

// Vars are a member's values of the placeholders.
type Vars struct {
	Name, Config, Env, DataDir, PeerURL, ClientURL, StaleDataDir string
}

// Expand replaces the placeholders of tmpl by v's values, quoted for a
// POSIX shell.
func Expand(tmpl string, v Vars) string {
	values := map[string]string{"{name}": v.Name, "{config}": v.Config, "{env}": v.Env, "{data-dir}": v.DataDir,
		"{peer-url}": v.PeerURL, "{client-url}": v.ClientURL, "{stale-data-dir}": v.StaleDataDir}
	return placeholderRE.ReplaceAllStringFunc(tmpl, func(p string) string {
		if val, ok := values[p]; ok {
			return memberconf.ShellQuote(val)
		}
		return p
	})
}

// runShell runs cmd with /bin/sh -c and returns its error with the end of
// its output. The output goes to a temporary file, not a pipe: a command
// that starts a member in the background leaves it holding the output, and
// a pipe would keep us waiting for that member to exit.
func runShell(ctx context.Context, cmd string) error {
	out, err := os.CreateTemp("", "etcdops-migrate-cmd-*")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Stdout, c.Stderr = out, out
	if err := c.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		tail := strings.TrimSpace(string(b))
		if len(tail) > 300 {
			tail = "..." + tail[len(tail)-300:]
		}
		if tail != "" {
			return fmt.Errorf("%s: %w: %s", cmd, err, tail)
		}
		return fmt.Errorf("%s: %w", cmd, err)
	}
	return nil
}
