package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite docs/reliability.md from the fault matrix and the bad-input catalogue")

const (
	reliabilityDoc = "../../docs/reliability.md"
	// handWritten starts the part of docs/reliability.md that is written by
	// hand and kept as it is by -update.
	handWritten = "<!-- Everything above is generated; the sections below are written by hand. -->\n"
	docCommand  = "scripts/test.sh -run TestReliabilityDoc ./cmd/etcdops/ -update"
)

var docDate = regexp.MustCompile(`(?m)^Generated on (\d{4}-\d{2}-\d{2}) `)

// TestReliabilityDoc checks that docs/reliability.md shows the fault matrix
// and the bad-input catalogue exactly as the tests run them; -update
// rewrites the generated part (with today's date) and keeps the rest.
func TestReliabilityDoc(t *testing.T) {
	old, err := os.ReadFile(reliabilityDoc)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	generated, hand, found := strings.Cut(string(old), handWritten)
	if !found {
		hand = "\n## Fuzzing\n\nThe fuzz targets, their seed corpora and the command that runs them longer are described here as they land.\n"
	}
	if *update {
		doc := renderReliability(time.Now().UTC().Format(time.DateOnly)) + handWritten + hand
		if err := os.WriteFile(reliabilityDoc, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	date := "(none)"
	if m := docDate.FindStringSubmatch(generated); m != nil {
		date = m[1]
	}
	if want := renderReliability(date); generated != want {
		t.Errorf("docs/reliability.md is not what the tests run; regenerate it with\n\t%s\nwant:\n%s", docCommand, want)
	}
}

// renderReliability renders the generated part of docs/reliability.md.
func renderReliability(date string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Reliability: the fault matrix and the bad-input catalogue\n\n")
	fmt.Fprintf(&b, "Generated on %s by `%s`\n", date, docCommand)
	fmt.Fprintf(&b, "from the tables that `TestFaultMatrix` and `TestBadInputCatalogue` (in `cmd/etcdops/`) run: a row\n")
	fmt.Fprintf(&b, "here is a test, run by `scripts/test.sh` against real processes (`etcdops`, stock etcd tools, MinIO,\n")
	fmt.Fprintf(&b, "fake-gcs-server, Azurite). `TestReliabilityDoc` fails when this file and the tables differ.\n\n")

	fmt.Fprintf(&b, "## Fault matrix\n\n")
	fmt.Fprintf(&b, "%d rows. Run one with `scripts/test.sh -run 'TestFaultMatrix/NAME' ./cmd/etcdops/`.\n\n", len(faultMatrix))
	fmt.Fprintf(&b, "| Name | Operation | Fault | Shown to hold |\n|---|---|---|---|\n")
	for _, r := range faultMatrix {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.name, r.op, r.fault, r.holds)
	}

	fmt.Fprintf(&b, "\n%d more rows belong to migrate and the scheduled backups; each is a test of its own, named here.\n\n", len(capabilityFaults))
	fmt.Fprintf(&b, "| Name | Test | Operation | Fault | Shown to hold |\n|---|---|---|---|---|\n")
	for _, r := range capabilityFaults {
		fmt.Fprintf(&b, "| `%s` | `%s` in `%s/` | %s | %s | %s |\n", r.name, r.test, r.pkg, r.op, r.fault, r.holds)
	}

	fmt.Fprintf(&b, "\n## Bad-input catalogue\n\n")
	fmt.Fprintf(&b, "%d cases. Each asserts the exit code (2 for bad input; `health` exits 3, UNKNOWN, as a Nagios plugin),\n", len(catalogue))
	fmt.Fprintf(&b, "that stderr is one line `etcdops: …` holding every fragment shown, and that nothing happened: nothing new\n")
	fmt.Fprintf(&b, "in the working directory or in the file:// and MinIO buckets, the snapshot file and the member list unchanged.\n")
	fmt.Fprintf(&b, "`$EP` is a live member, `$BUCKET` a file:// bucket, `$S3` a MinIO bucket, `$SNAP` a snapshot, `$KEYS` a file\n")
	fmt.Fprintf(&b, "without an age key.\n\n")
	fmt.Fprintf(&b, "| Command line | Exit | The one line says |\n|---|---|---|\n")
	for _, c := range catalogue {
		args := make([]string, len(c.args))
		for i, a := range c.args {
			if a == "" || strings.ContainsAny(a, " ") {
				a = fmt.Sprintf("%q", a)
			}
			args[i] = a
		}
		line := strings.Join(append([]string{"etcdops", c.cmd}, args...), " ")
		for name := range c.files {
			line += " (" + name + ": " + strings.ReplaceAll(strings.TrimSpace(c.files[name]), "\n", "; ") + ")"
		}
		var says []string
		for _, w := range c.want {
			says = append(says, "`"+strings.ReplaceAll(w, "|", `\|`)+"`")
		}
		var not []string
		for _, w := range c.not {
			not = append(not, "`"+strings.ReplaceAll(w, "|", `\|`)+"`")
		}
		if len(not) > 0 {
			says = append(says, "never "+strings.Join(not, " or "))
		}
		fmt.Fprintf(&b, "| `%s` | %d | %s |\n", strings.ReplaceAll(line, "|", `\|`), c.code, strings.Join(says, " … "))
	}
	b.WriteString("\n")
	return b.String()
}
