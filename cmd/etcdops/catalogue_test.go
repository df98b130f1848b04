package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/objtest"
)

// badInput is one case of the bad-input catalogue: a command line with one
// mistake, the exit code it must end with, and the words of the one line
// that explains it (the input it names and what was expected).
//
// Arguments may hold placeholders, replaced for each case:
//
//	$EP      the client URL of a live member
//	$BUCKET  a file:// bucket (an existing, empty directory)
//	$S3      an empty MinIO bucket
//	$SNAP    a valid snapshot file
//	$KEYS    a file holding no age key ("# nothing here")
type badInput struct {
	cmd  string   // the command, as typed: "backup save"
	args []string // its arguments
	code int
	want []string // all in the one stderr line
	not  []string // none in it
	// files are created in the case's working directory first.
	files map[string]string
}

// catalogue is the bad-input catalogue; docs/reliability.md shows it.
var catalogue = []badInput{
	// serve takes etcd's flags: exit 2, one line, and no data dir.
	{cmd: "serve", args: []string{"--bogus"}, code: 2, want: []string{"--bogus", "unknown flag"}},
	{cmd: "serve", args: []string{"extra"}, code: 2, want: []string{`"extra"`, "not a valid flag"}},
	{cmd: "serve", args: []string{"--listen-client-urls", "notaurl"}, code: 2, want: []string{"--listen-client-urls", "URL scheme must be"}},
	{cmd: "serve", args: []string{"--initial-cluster-state", "maybe"}, code: 2, want: []string{"--initial-cluster-state", "expected one of existing, new"}},
	{cmd: "serve", args: []string{"--log-level", "loud"}, code: 2, want: []string{"--log-level", "expected debug, info"}},
	{cmd: "serve", args: []string{"--snapshot-count", "many"}, code: 2, want: []string{"--snapshot-count", `invalid value "many"`}},
	{cmd: "serve", args: []string{"--config-file", "missing.yml"}, code: 2, want: []string{"--config-file", "missing.yml"}},
	{cmd: "serve", args: []string{"--config-file", "c.yml"}, code: 2, want: []string{`unknown key "snapshot-cuont"`},
		files: map[string]string{"c.yml": "name: a\nsnapshot-cuont: 5\n"}},
	{cmd: "serve", args: []string{"--name", "x", "--initial-cluster", "y=http://127.0.0.1:2380"}, code: 2, want: []string{`--name "x"`, "not in --initial-cluster (y)"}},
	{cmd: "serve", args: []string{"--listen-peer-urls", "http://example.com:2380"}, code: 2, want: []string{"http://example.com:2380", "expected IP"}},

	// backup save: nothing in the bucket.
	{cmd: "backup save", args: []string{"--endpoints", "$EP"}, code: 2, want: []string{"--to", "required"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "ftp://b"}, code: 2, want: []string{"--to", `"ftp://b"`, "expected one of file, s3, gs, azblob, mem"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", ""}, code: 2, want: []string{"--to", "expected scheme://bucket"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "s3://"}, code: 2, want: []string{`--to "s3://"`, "no bucket name: expected s3://BUCKET"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$BUCKET?bogus=1"}, code: 2, want: []string{"--to", `?bogus=1"`, `invalid query parameter "bogus"`, "expected prefix or the parameters gocloud.dev documents for file:// URLs"},
		not: []string{"no_tmp_dir", "metadata"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$BUCKET", "--stall-timeout", "0s"}, code: 2, want: []string{`--stall-timeout "0s"`, "expected a positive duration"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$BUCKET/missing"}, code: 2, want: []string{"--to", "/missing", "no such bucket"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$S3", "--bogus"}, code: 2, want: []string{"-bogus", "not defined"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$S3", "--keep-last", "x"}, code: 2, want: []string{"-keep-last", `"x"`}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$S3", "--keep-within", "abc"}, code: 2, want: []string{"-keep-within", `"abc"`}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$S3", "--tag", "a/b"}, code: 2, want: []string{"--tag", `"a/b"`, "expected letters, digits"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$S3", "--keep-daily", "-1"}, code: 2, want: []string{"--keep-daily", "expected a count of 0 or more"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$S3", "--keep-within", "-1h"}, code: 2, want: []string{"--keep-within", "expected a positive duration"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$S3", "--age-recipient", "age1bogus"}, code: 2, want: []string{"--age-recipient", "age1bogus", "expected an age1… public key"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$S3", "--age-recipients-file", "missing.txt"}, code: 2, want: []string{"--age-recipients-file", "missing.txt"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$BUCKET", "--age-recipients-file", "$KEYS"}, code: 2, want: []string{"--age-recipients-file", "no age1… public key"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$BUCKET", "-w", "yaml"}, code: 2, want: []string{"--write-out", `"yaml"`, "expected table or json"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$BUCKET", "extra"}, code: 2, want: []string{`unexpected argument "extra"`}},
	{cmd: "backup save", args: []string{"--endpoints", "ftp://127.0.0.1:1", "--to", "$BUCKET"}, code: 2, want: []string{"--endpoints", "ftp://127.0.0.1:1", "expected scheme http, https"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$BUCKET", "--dial-timeout", "-1s"}, code: 2, want: []string{"--dial-timeout", "expected a positive duration"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$BUCKET", "--cert", "client.pem"}, code: 2, want: []string{"--cert and --key", "expected both or neither"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$BUCKET", "--password", "secret"}, code: 2, want: []string{"--password", "given without a user"}},
	{cmd: "backup save", args: []string{"--endpoints", "$EP", "--to", "$BUCKET", "--log-level", "loud"}, code: 2, want: []string{"--log-level", `"loud"`, "expected debug, info"}},

	// backup list, verify, fetch, prune.
	{cmd: "backup list", args: nil, code: 2, want: []string{"--from", "required"}},
	{cmd: "backup list", args: []string{"--from", "ftp://b"}, code: 2, want: []string{"--from", `"ftp://b"`, "expected one of file, s3"}},
	{cmd: "backup verify", args: []string{"--from", "$BUCKET", "bogus"}, code: 2, want: []string{`snapshot "bogus"`, "expected <tag>_<YYYY-MM-DD_HH-MM-SS>.db"}},
	{cmd: "backup verify", args: []string{"--from", "$BUCKET", "--bogus"}, code: 2, want: []string{"-bogus", "not defined"}},
	{cmd: "backup fetch", args: []string{"--from", "$BUCKET", "latest"}, code: 2, want: []string{"--to", "required"}},
	{cmd: "backup fetch", args: []string{"--from", "ftp://b", "latest", "--to", "out.db"}, code: 2, want: []string{"--from", `"ftp://b"`, "expected one of file, s3"}},
	{cmd: "backup fetch", args: []string{"--from", "$S3", "bogus", "--to", "out.db"}, code: 2, want: []string{`snapshot "bogus"`, "expected <tag>_<YYYY-MM-DD_HH-MM-SS>.db"}},
	{cmd: "backup fetch", args: []string{"--from", "$BUCKET", "latest", "--to", "out.db", "--stall-timeout", "-1m"}, code: 2, want: []string{`--stall-timeout "-1m0s"`, "expected a positive duration"}},
	{cmd: "backup prune", args: []string{"--from", "ftp://b", "--keep-last", "1"}, code: 2, want: []string{"--from", `"ftp://b"`, "expected one of file, s3"}},
	{cmd: "backup prune", args: []string{"--from", "$S3", "--keep-within", "1x"}, code: 2, want: []string{"-keep-within", `"1x"`}},
	{cmd: "backup list", args: []string{"--from", "$S3", "--tag", "a/b"}, code: 2, want: []string{"--tag", `"a/b"`, "expected letters, digits"}},
	{cmd: "backup prune", args: []string{"--from", "$BUCKET", "--keep-last", "1", "--tag", "a/b"}, code: 2, want: []string{"--tag", `"a/b"`, "expected letters, digits"}},
	{cmd: "backup fetch", args: []string{"--from", "$BUCKET", "latest", "--tag", "-x", "--to", "out.db"}, code: 2, want: []string{"--tag", `"-x"`, "starting with a letter or digit"}},
	{cmd: "backup list", args: []string{"--from", "$S3", "extra"}, code: 2, want: []string{`unexpected argument "extra"`}},
	{cmd: "backup list", args: []string{"--from", "$BUCKET", "-w", "yaml"}, code: 2, want: []string{"--write-out", "expected table or json"}},
	{cmd: "backup verify", args: []string{"--from", "$BUCKET", "a", "b"}, code: 2, want: []string{`unexpected argument "b"`, "expected one snapshot NAME or latest"}},
	{cmd: "backup verify", args: []string{"--from", "$BUCKET", "latest", "--identity", "missing.txt"}, code: 2, want: []string{"--identity", "missing.txt"}},
	{cmd: "backup verify", args: []string{"--from", "$BUCKET", "latest", "--identity", "$KEYS"}, code: 2, want: []string{"--identity", "no identities"}},
	{cmd: "backup fetch", args: []string{"--from", "$S3", "a", "b", "--to", "out.db"}, code: 2, want: []string{`unexpected argument "b"`, "expected one snapshot NAME or latest"}},
	{cmd: "backup fetch", args: []string{"--from", "$BUCKET", "latest", "--to", "out.db", "--identity", "missing.txt"}, code: 2, want: []string{"--identity", "missing.txt"}},
	{cmd: "backup fetch", args: []string{"--from", "$BUCKET", "--tag", "t", "--to-revision", "5", "--to-time", "2026-12-05T10:00:00Z", "--to", "out.db"}, code: 2, want: []string{"--to-revision and --to-time", "not both"}},
	{cmd: "backup fetch", args: []string{"--from", "$BUCKET", "--tag", "t", "--to-time", "2026-12-05 10:00", "--to", "out.db"}, code: 2, want: []string{"--to-time", `"2026-12-05 10:00"`, "expected a time as"}},
	{cmd: "backup fetch", args: []string{"--from", "$BUCKET", "latest", "--tag", "t", "--to-revision", "5", "--to", "out.db"}, code: 2, want: []string{`unexpected argument "latest"`, "--to-revision and --to-time choose the snapshot"}},
	{cmd: "backup prune", args: []string{"--from", "$S3"}, code: 2, want: []string{"no --keep-*", "refusing to remove every snapshot"}},
	{cmd: "backup prune", args: []string{"--from", "$BUCKET", "--keep-last", "-3"}, code: 2, want: []string{"--keep-last", "expected a count of 0 or more"}},
	{cmd: "backup prune", args: []string{"--from", "$BUCKET", "--keep-within", "-1h"}, code: 2, want: []string{"--keep-within", "expected a positive duration"}},
	{cmd: "backup prune", args: []string{"--from", "$BUCKET", "--keep-last", "1", "extra"}, code: 2, want: []string{`unexpected argument "extra"`}},
	{cmd: "backup prune", args: []string{"--from", "$BUCKET", "--keep-last", "1", "--pitr-keep-within", "7d"}, code: 2, want: []string{"--pitr-keep-within", `"7d"`, "expected a duration of 0 or more"}},
	{cmd: "backup prune", args: []string{"--from", "$S3", "--keep-last", "1", "--pitr-keep-within", "-1h"}, code: 2, want: []string{"--pitr-keep-within", `"-1h"`, "expected a duration of 0 or more"}},
	{cmd: "backup prune", args: []string{"--from", "$BUCKET", "--pitr-keep-within", "24h"}, code: 2, want: []string{"no --keep-*", "refusing to remove every snapshot"}},

	// restore: no data dir, no config file.
	{cmd: "restore", args: []string{"--from", "$SNAP"}, code: 2, want: []string{"--initial-cluster", "expected name=peerURL"}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--initial-cluster", "bogus"}, code: 2, want: []string{"--initial-cluster", `"bogus"`, "expected name=peerURL"}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--initial-cluster", "a=http://127.0.0.1:2380,a=http://127.0.0.1:2381"}, code: 2, want: []string{"--initial-cluster", "member a is listed twice"}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--initial-cluster", "a=ftp://127.0.0.1:2380"}, code: 2, want: []string{"--initial-cluster", "URL scheme must be http"}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--initial-cluster", "a=http://127.0.0.1:2380", "--name", "b"}, code: 2, want: []string{"--name", `"b"`, "not a member of the initial cluster"}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--initial-cluster", "a=http://127.0.0.1:2380", "--client-urls", "b=http://127.0.0.1:2379"}, code: 2, want: []string{"--client-urls", "b is not a member"}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--initial-cluster", "a=http://127.0.0.1:2380", "--client-urls", "a=notaurl"}, code: 2, want: []string{"--client-urls", "URL scheme must be http"}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--initial-cluster", "a=http://127.0.0.1:2380", "--mark-compacted"}, code: 2, want: []string{"--mark-compacted", "expected together with a revision bump"}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--initial-cluster", "a=http://127.0.0.1:2380", "--bump-revision", "-1"}, code: 2, want: []string{"-bump-revision", `"-1"`}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--initial-cluster", "a=http://127.0.0.1:2380", "--bogus"}, code: 2, want: []string{"-bogus", "not defined"}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--initial-cluster", "a=http://127.0.0.1:2380", "extra"}, code: 2, want: []string{`unexpected argument "extra"`}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--initial-cluster", "a=http://127.0.0.1:2380", "--snapshot", "latest"}, code: 2, want: []string{"--snapshot", "expected only with a bucket URL"}},
	{cmd: "restore", args: []string{"--from", "$BUCKET", "--initial-cluster", "a=http://127.0.0.1:2380"}, code: 2, want: []string{"--snapshot", "expected a snapshot NAME or latest"}},
	{cmd: "restore", args: []string{"--from", "ftp://b", "--snapshot", "latest", "--initial-cluster", "a=http://127.0.0.1:2380"}, code: 2, want: []string{"--from", `"ftp://b"`, "expected one of file, s3"}},
	{cmd: "restore", args: []string{"--from", "$BUCKET", "--snapshot", "bogus", "--initial-cluster", "a=http://127.0.0.1:2380"}, code: 2, want: []string{`--snapshot "bogus"`, "expected <tag>_<YYYY-MM-DD_HH-MM-SS>.db"}},
	{cmd: "restore", args: []string{"--from", "$BUCKET", "--snapshot", "latest", "--tag", "a/b", "--initial-cluster", "a=http://127.0.0.1:2380"}, code: 2, want: []string{"--tag", `"a/b"`, "expected letters, digits"}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--initial-cluster", "a=http://127.0.0.1:2380", "--identity", "missing.txt"}, code: 2, want: []string{"--identity", "missing.txt"}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--initial-cluster", "a=http://127.0.0.1:2380", "--cert-file", "a.pem"}, code: 2, want: []string{"--key-file", "expected with the cert file"}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--initial-cluster", "a=http://127.0.0.1:2380", "--peer-key-file", "a-key.pem"}, code: 2, want: []string{"--peer-cert-file", "expected with the peer key file"}},
	{cmd: "restore", args: []string{"--from", "$S3", "--snapshot", "latest", "--initial-cluster", "a=http://127.0.0.1:2380", "--stall-timeout", "0s"}, code: 2, want: []string{"--stall-timeout", "expected a positive duration"}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--initial-cluster", "a=http://127.0.0.1:2380", "-w", "yaml"}, code: 2, want: []string{"--write-out", "expected table or json"}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--initial-cluster", "a=http://127.0.0.1:2380", "--initial-cluster-token", ""}, code: 2, want: []string{"--initial-cluster-token", "expected a non-empty token"}},
	// restore to a point of a tag's log (pitr).
	{cmd: "restore", args: []string{"--from", "$BUCKET", "--tag", "t", "--to-revision", "5", "--to-time", "2026-12-05T10:00:00Z", "--initial-cluster", "a=http://127.0.0.1:2380"}, code: 2, want: []string{"--to-revision and --to-time", "not both"}},
	{cmd: "restore", args: []string{"--from", "$BUCKET", "--tag", "t", "--to-time", "yesterday", "--initial-cluster", "a=http://127.0.0.1:2380"}, code: 2, want: []string{"--to-time", `"yesterday"`, "expected a time as 2026-12-05T10:00:00Z"}},
	{cmd: "restore", args: []string{"--from", "$BUCKET", "--tag", "t", "--to-revision", "-3", "--initial-cluster", "a=http://127.0.0.1:2380"}, code: 2, want: []string{"--to-revision", `"-3"`, "expected a revision (a positive number) or latest"}},
	{cmd: "restore", args: []string{"--from", "$BUCKET", "--to-revision", "5", "--initial-cluster", "a=http://127.0.0.1:2380"}, code: 2, want: []string{"--tag", "expected the tag whose log to restore from"}},
	{cmd: "restore", args: []string{"--from", "$BUCKET", "--tag", "t", "--snapshot", "latest", "--to-revision", "5", "--initial-cluster", "a=http://127.0.0.1:2380"}, code: 2, want: []string{"--snapshot", "expected no snapshot name with a point in time"}},
	{cmd: "restore", args: []string{"--from", "$SNAP", "--tag", "t", "--to-revision", "latest", "--initial-cluster", "a=http://127.0.0.1:2380"}, code: 2, want: []string{"--from", "expected a bucket URL for a point in time"}},

	// health: bad input is UNKNOWN (3), as a Nagios plugin's.
	{cmd: "health", args: []string{"--endpoints", "ftp://127.0.0.1:1"}, code: 3, want: []string{"--endpoints", "expected scheme http, https"}},
	{cmd: "health", args: []string{"--endpoints", "$EP", "-w", "yaml"}, code: 3, want: []string{"-w", `"yaml"`, "expected one of table, json, prometheus, nagios"}},
	{cmd: "health", args: []string{"--endpoints", "$EP", "--warn-db-percent", "120"}, code: 3, want: []string{"--warn-db-percent", "expected a percentage from 0 to 100"}},
	{cmd: "health", args: []string{"--endpoints", "$EP", "--warn-db-percent", "90", "--crit-db-percent", "80"}, code: 3, want: []string{"--warn-db-percent 90: expected at most --crit-db-percent 80"}},
	{cmd: "health", args: []string{"--endpoints", "$EP", "--max-backup-age", "1h"}, code: 3, want: []string{"--max-backup-age", "without --backups"}},
	{cmd: "health", args: []string{"--endpoints", "$EP", "--backups", "$BUCKET"}, code: 3, want: []string{"--backups", "expected --max-backup-age too"}},
	{cmd: "health", args: []string{"--endpoints", "$EP", "--bogus"}, code: 3, want: []string{"-bogus", "not defined"}},
	{cmd: "health", args: []string{"--endpoints", "$EP", "extra"}, code: 3, want: []string{`"extra"`, "endpoints go in --endpoints"}},
	{cmd: "health", args: []string{"--endpoints", "$EP", "--command-timeout", "-1s"}, code: 3, want: []string{"--command-timeout", "expected a positive duration"}},

	// defrag: nothing compacted or defragmented.
	{cmd: "defrag", args: []string{"--endpoints", "$EP", "--min-free-fraction", "0"}, code: 2, want: []string{"--min-free-fraction 0", "expected a fraction in (0,1]"}},
	{cmd: "defrag", args: []string{"--endpoints", "$EP", "--quota-fraction", "1.5"}, code: 2, want: []string{"--quota-fraction 1.5", "expected a fraction in (0,1]"}},
	{cmd: "defrag", args: []string{"--endpoints", "$EP", "--min-free", "-1MiB"}, code: 2, want: []string{`--min-free "-1MiB"`, "expected a size of 0 or more"}},
	{cmd: "defrag", args: []string{"--endpoints", "$EP", "--min-free", "lots"}, code: 2, want: []string{`--min-free "lots"`, "expected a size such as 100MiB"}},
	{cmd: "defrag", args: []string{"--endpoints", "$EP", "--all", "--min-free", "1GiB"}, code: 2, want: []string{"--all and --min-free", "expected one of them"}},
	{cmd: "defrag", args: []string{"--endpoints", "$EP", "--timeout", "-1s"}, code: 2, want: []string{"--timeout", "expected a positive duration"}},
	{cmd: "defrag", args: []string{"--endpoints", "$EP", "--compact-keep-revisions", "-5", "--compact"}, code: 2, want: []string{"--compact-keep-revisions -5", "expected 0 or more revisions"}},
	{cmd: "defrag", args: []string{"--endpoints", "$EP", "--compact-keep-revisions", "5"}, code: 2, want: []string{"--compact-keep-revisions", "without --compact"}},
	{cmd: "defrag", args: []string{"--endpoints", "$EP", "-w", "yaml"}, code: 2, want: []string{"--write-out", `"yaml"`, "expected table or json"}},
	{cmd: "defrag", args: []string{"--endpoints", "$EP", "extra"}, code: 2, want: []string{`unexpected argument "extra"`}},

	// schedule and the member's own schedule: nothing started, nothing in the bucket.
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--cron", "0 0 30 2 *", "--to", "$BUCKET", "--tag", "t"}, code: 2, want: []string{`--cron: cron spec "0 0 30 2 *"`, "no run in the next five years"}},
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--config", "jobs.yml"}, code: 2, want: []string{"--config jobs.yml", `job "a": cron: cron spec "0 0 31 4 *"`, "no run in the next five years"},
		files: map[string]string{"jobs.yml": "jobs:\n  - {name: a, cron: '0 0 31 4 *', to: 'mem://'}\n"}},
	{cmd: "serve", args: []string{"--backup-cron", "0 0 30 2 *", "--backup-to", "$BUCKET"}, code: 2, want: []string{`--backup-cron: cron spec "0 0 30 2 *"`, "no run in the next five years"}},
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--to", "$BUCKET", "--pitr"}, code: 2, want: []string{"--pitr: needs --cron"}},
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--cron", "@hourly", "--to", "$BUCKET", "--pitr", "--pitr-interval", "soon"}, code: 2, want: []string{"--pitr-interval", `"soon"`, "expected a duration"}},
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--cron", "@hourly", "--to", "$BUCKET", "--pitr", "--pitr-segment-size", "16m"}, code: 2, want: []string{"--pitr-segment-size", `"16m"`, "expected a size"}},
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--config", "jobs.yml"}, code: 2, want: []string{"--config jobs.yml", `job "a": pitr: needs cron`},
		files: map[string]string{"jobs.yml": "jobs:\n  - {name: a, to: 'mem://', pitr: true}\n"}},
	{cmd: "serve", args: []string{"--backup-cron", "@hourly", "--backup-to", "$BUCKET", "--backup-pitr=maybe"}, code: 2, want: []string{"--backup-pitr", `"maybe"`, "expected true or false"}},
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--cron", "@hourly", "--to", "$BUCKET", "--keep-last", "1", "--pitr-keep-within", "24h"}, code: 2, want: []string{"--pitr-keep-within", "given without pitr"}},
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--cron", "@hourly", "--to", "$BUCKET", "--pitr", "--pitr-keep-within", "24h"}, code: 2, want: []string{"--pitr-keep-within", "given without a keep-* rule"}},
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--cron", "@hourly", "--to", "$BUCKET", "--pitr", "--keep-last", "1", "--pitr-keep-within", "1 day"}, code: 2, want: []string{"--pitr-keep-within", `"1 day"`, "expected a duration"}},
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--config", "jobs.yml"}, code: 2, want: []string{"--config jobs.yml", `job "a": pitr-keep-within: "-2h"`, "expected a duration"},
		files: map[string]string{"jobs.yml": "jobs:\n  - {name: a, cron: '@hourly', to: 'mem://', keep-last: 1, pitr: true, pitr-keep-within: -2h}\n"}},
	{cmd: "serve", args: []string{"--backup-cron", "@hourly", "--backup-to", "$BUCKET", "--backup-keep-last", "1", "--backup-pitr-keep-within", "24h"}, code: 2, want: []string{"--backup-pitr-keep-within", "given without pitr"}},
	{cmd: "serve", args: []string{"--backup-cron", "@hourly", "--backup-to", "$BUCKET", "--backup-pitr", "--backup-keep-last", "1", "--backup-pitr-keep-within", "soon"}, code: 2, want: []string{"--backup-pitr-keep-within", `"soon"`, "expected a duration"}},
	{cmd: "systemd backup", args: []string{"--name", "x", "--", "--endpoints", "$EP", "--cron", "0 0 30 2 *", "--to", "$BUCKET"}, code: 2, want: []string{`--cron: cron spec "0 0 30 2 *"`, "no run in the next five years"}},
	// scheduled rolling defrags: nothing started, nothing compacted or defragmented.
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--defrag-cron", "0 0 30 2 *"}, code: 2, want: []string{`--defrag-cron: cron spec "0 0 30 2 *"`, "no run in the next five years"}},
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--defrag-cron", "@daily", "--min-free-fraction", "0"}, code: 2, want: []string{"--min-free-fraction: 0", "expected a fraction in (0,1]"}},
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--defrag-cron", "@daily", "--min-free", "-1MiB"}, code: 2, want: []string{`--min-free: "-1MiB"`, "expected a size of 0 or more"}},
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--defrag-cron", "@daily", "--all", "--quota-fraction", "0.5"}, code: 2, want: []string{"--all: given with quota-fraction", "expected one of them"}},
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--cron", "@daily", "--to", "$BUCKET", "--compact"}, code: 2, want: []string{"--compact: given without defrag-cron"}},
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--defrag-cron", "@daily", "--compact-keep-revisions", "5"}, code: 2, want: []string{"--compact-keep-revisions: given without compact"}},
	{cmd: "schedule", args: []string{"--endpoints", "$EP", "--config", "jobs.yml"}, code: 2, want: []string{"--config jobs.yml", `job "d": quota-fraction: 2: expected a fraction in (0,1]`},
		files: map[string]string{"jobs.yml": "jobs:\n  - {name: d, defrag-cron: '@daily', quota-fraction: 2}\n"}},
	{cmd: "serve", args: []string{"--defrag-cron", "0 0 30 2 *"}, code: 2, want: []string{`--defrag-cron: cron spec "0 0 30 2 *"`, "no run in the next five years"}},
	{cmd: "systemd backup", args: []string{"--name", "x", "--", "--endpoints", "$EP", "--defrag-cron", "0 0 30 2 *"}, code: 2, want: []string{`--defrag-cron: cron spec "0 0 30 2 *"`, "no run in the next five years"}},

	// systemd unit: no file written.
	{cmd: "systemd unit", args: []string{"--bogus"}, code: 2, want: []string{"-bogus", "not defined"}},
	{cmd: "systemd unit", args: []string{"extra"}, code: 2, want: []string{`unexpected argument "extra"`}},
	{cmd: "systemd unit", args: []string{"--name", "x", "--root", "."}, code: 2, want: []string{"--root", "expected only with --install"}},
	{cmd: "systemd unit", args: []string{"--name", "a b", "--install", "--root", "."}, code: 2, want: []string{"--name", `"a b"`, "expected a member name"}},
	{cmd: "systemd unit", args: []string{"--name", "x", "--initial-cluster-state", "maybe", "--install", "--root", "."}, code: 2, want: []string{"--initial-cluster-state", `expected "new" or "existing"`}},
	{cmd: "systemd unit", args: []string{"--name", "x", "--listen-client-urls", "127.0.0.1:2379", "--install", "--root", "."}, code: 2, want: []string{"--listen-client-urls", "expected comma-separated URLs"}},
	{cmd: "systemd unit", args: []string{"--name", "x", "--env", "FOO=bar", "--install", "--root", "."}, code: 2, want: []string{"--env", "starting with ETCD_"}},
	{cmd: "systemd unit", args: []string{"--name", "x", "--env", "ETCD_NAME=y", "--install", "--root", "."}, code: 2, want: []string{"--env", "ETCD_NAME", "set by --name"}},
	{cmd: "systemd unit", args: []string{"--name", "x", "--data-dir", "relative", "--install", "--root", "."}, code: 2, want: []string{"--data-dir", `"relative"`, "expected a clean absolute path"}},
	{cmd: "systemd unit", args: []string{"--name", "x", "--user", "bad user", "--install", "--root", "."}, code: 2, want: []string{"--user", "expected a user name"}},
	{cmd: "systemd unit", args: []string{"--name", "x", "--cert-file", "/etc/etcd/x.pem", "--install", "--root", "."}, code: 2, want: []string{"--key-file", "expected the key of --cert-file"}},
}

// TestBadInputCatalogue runs every case of the catalogue against real
// processes: the exit code, one line on stderr that names the input and
// what was expected, and no side effect (nothing new in the working
// directory, the buckets, the snapshot, or the member list).
func TestBadInputCatalogue(t *testing.T) {
	c := etcdtest.StartEmbedded(t, 1)
	cli := c.Client()
	etcdtest.Put(t, cli, "k", "v")
	shared := t.TempDir()
	snap := filepath.Join(shared, "snap.db")
	etcdtest.Etcdctl(t, c.Endpoints(), "snapshot", "save", snap)
	snapInfo, err := os.Stat(snap)
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(shared, "keys.txt")
	if err := os.WriteFile(keys, []byte("# nothing here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s3 := objtest.S3(t)
	s3Bucket := s3.NewBucket(t)
	members := memberIDs(t, c.Endpoints())

	for _, tc := range catalogue {
		t.Run(tc.cmd+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			work, bucketDir := t.TempDir(), t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(work, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			r := strings.NewReplacer("$EP", c.Endpoints()[0], "$BUCKET", "file://"+bucketDir, "$S3", s3Bucket, "$SNAP", snap, "$KEYS", keys)
			args := strings.Fields(tc.cmd)
			for _, a := range tc.args {
				args = append(args, r.Replace(a))
			}
			_, stderr, code := runIn(t, work, s3.Env, args...)
			line := strings.TrimSpace(stderr)
			if code != tc.code || strings.Contains(line, "\n") || !strings.HasPrefix(line, "etcdops: ") {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and one line", code, stderr, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("stderr %q does not say %q", line, w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(line, w) {
					t.Errorf("stderr %q says %q", line, w)
				}
			}
			if left := newEntries(t, work, tc.files); len(left) > 0 {
				t.Errorf("bad input left %v in the working directory", left)
			}
			if entries, _ := os.ReadDir(bucketDir); len(entries) > 0 {
				t.Errorf("bad input left %v in the file:// bucket", entries)
			}
		})
	}
	if keys := bucketKeys(t, s3Bucket); len(keys) > 0 {
		t.Errorf("bad input left %v in the MinIO bucket", keys)
	}
	if fi, err := os.Stat(snap); err != nil || fi.Size() != snapInfo.Size() || !fi.ModTime().Equal(snapInfo.ModTime()) {
		t.Errorf("bad input changed the snapshot file: %v", err)
	}
	if got := memberIDs(t, c.Endpoints()); !slices.Equal(got, members) {
		t.Errorf("bad input changed the members: %v, was %v", got, members)
	}
}

// newEntries lists what dir holds besides the files a case put there.
func newEntries(t *testing.T, dir string, files map[string]string) []string {
	t.Helper()
	var left []string
	for _, name := range list(t, dir) {
		if _, ok := files[name]; !ok {
			left = append(left, name)
		}
	}
	return left
}

// bucketKeys lists every object in a bucket, leftovers included.
func bucketKeys(t *testing.T, bucketURL string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var keys []string
	it := b.List(nil)
	for {
		obj, err := it.Next(ctx)
		if err != nil {
			break
		}
		keys = append(keys, obj.Key)
	}
	return keys
}

// memberIDs returns the cluster's member IDs, sorted.
func memberIDs(t *testing.T, endpoints []string) []uint64 {
	t.Helper()
	cli := etcdtest.NewClient(t, endpoints...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, m := range resp.Members {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}
