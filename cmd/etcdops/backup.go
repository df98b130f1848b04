package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/internal/etcdclient"
	"github.com/etcdops/etcdops/pitr"
)

const backupExitCodes = "Exit codes: 0 done, 1 the operation failed (nothing new is visible in the bucket),\n" +
	"2 bad flags or arguments (nothing was done)."

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:  "backup",
		Usage: "take, list, verify, fetch and prune etcd snapshots in a bucket",
		Description: "Buckets are gocloud.dev URLs: file:///dir, s3://bucket?region=…, gs://bucket, azblob://container,\n" +
			"mem://; add ?prefix=dir/ to keep snapshots under a prefix. Credentials come from the backends'\n" +
			"standard environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*).\n\n" + backupExitCodes,
		Subcommands: []*cli.Command{backupSaveCommand(), backupListCommand(), backupVerifyCommand(), backupFetchCommand(), backupPruneCommand()},
	}
}

var (
	flagFrom = &cli.StringFlag{Name: "from", Required: true, Usage: "bucket `URL` holding the snapshots"}
	flagTag  = &cli.StringFlag{Name: "tag", Usage: "only snapshots of `TAG` (usually a member name)",
		Action: func(_ *cli.Context, tag string) error { return backupFlagError(backup.ValidateTag(tag), backupFlags) }}
	flagOutput   = &cli.StringFlag{Name: "write-out", Aliases: []string{"w"}, Value: "table", Usage: "output `FORMAT`: table or json"}
	flagIdentity = &cli.StringFlag{Name: "identity", Usage: "age identity `FILE` to decrypt encrypted snapshots"}
	flagSpool    = &cli.StringFlag{Name: "spool-dir", Usage: "`DIR` for private temporary files (default: the system's temp dir)"}
	flagQuiet    = &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar even on a terminal"}
	flagLogLevel = &cli.StringFlag{Name: "log-level", Value: "info", Usage: "log `LEVEL`: debug, info, warn, error"}
	flagStall    = &cli.DurationFlag{Name: "stall-timeout", Value: backup.DefaultStallTimeout,
		Usage: "fail a transfer to or from the bucket when no byte moves for `DURATION` (at least the time one 8 MiB part takes)"}
)

// storeOptions are the bucket options of a command's flags.
func storeOptions(c *cli.Context) []backup.StoreOption {
	if c.Value(flagStall.Name) == nil { // a command without the flag
		return nil
	}
	return []backup.StoreOption{backup.WithStallTimeout(c.Duration(flagStall.Name))}
}

func keepFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "keep-last", Usage: "keep the `N` newest snapshots of each tag"},
		&cli.IntFlag{Name: "keep-hourly", Usage: "keep the newest snapshot of each of the last `N` hours"},
		&cli.IntFlag{Name: "keep-daily", Usage: "keep the newest snapshot of each of the last `N` days"},
		&cli.IntFlag{Name: "keep-weekly", Usage: "keep the newest snapshot of each of the last `N` weeks"},
		&cli.IntFlag{Name: "keep-monthly", Usage: "keep the newest snapshot of each of the last `N` months"},
		&cli.DurationFlag{Name: "keep-within", Usage: "keep every snapshot taken within `DURATION` of the newest"},
	}
}

// flagPITRKeepWithin is the point-in-time window of backup prune and schedule.
var flagPITRKeepWithin = &cli.StringFlag{Name: "pitr-keep-within",
	Usage: "keep every point of a tag's change log within `DURATION` before its newest snapshot recoverable (the newest snapshot before that stays, with the log after it), whatever the --keep-* rules drop"}

func policyFrom(c *cli.Context) (backup.Policy, error) {
	p := backup.Policy{Last: c.Int("keep-last"), Hourly: c.Int("keep-hourly"), Daily: c.Int("keep-daily"),
		Weekly: c.Int("keep-weekly"), Monthly: c.Int("keep-monthly"), Within: c.Duration("keep-within")}
	return p, backupFlagError(p.Validate(), backupFlags)
}

func checkFormat(c *cli.Context) error {
	if f := c.String("write-out"); f != "table" && f != "json" {
		return usageError(fmt.Errorf("--write-out: invalid value %q, expected table or json", f))
	}
	return nil
}

// noArgsAndFormat checks a command that takes no arguments and has -w.
func noArgsAndFormat(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	return checkFormat(c)
}

func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError(fmt.Errorf("unexpected argument %q", c.Args().First()))
	}
	return nil
}

// saveFlags say what a save takes and where it stores it: backup save's,
// which schedule takes too. --to is required unless a schedule reads its
// jobs from a file.
func saveFlags(toRequired bool) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "to", Required: toRequired, Usage: "bucket `URL` to store the snapshot in"},
		&cli.StringFlag{Name: "tag", Usage: "name snapshots `TAG`_<time> (default: the member's name with one endpoint, cluster-<cluster ID> with several)"},
		&cli.StringFlag{Name: "member", Usage: "take the snapshot from the member `NAME` (default: the voting member that applied the most)"},
		&cli.BoolFlag{Name: "compress", Usage: "compress with zstd (.zst)"},
		&cli.StringSliceFlag{Name: "age-recipient", Usage: "encrypt with age to public key `AGE1…` (repeatable; .age)"},
		&cli.StringFlag{Name: "age-recipients-file", Usage: "encrypt to the age public keys in `FILE`, one per line"},
	}
}

func backupSaveCommand() *cli.Command {
	flags := append(clientFlags(), saveFlags(true)...)
	flags = append(flags, flagStall, flagQuiet, flagLogLevel, flagOutput)
	flags = append(flags, keepFlags()...)
	return &cli.Command{
		Name:      "save",
		Usage:     "take one snapshot into a bucket, then apply any --keep-* retention",
		UsageText: "etcdops backup save --endpoints URLS --to URL [--tag TAG] [--compress] [--age-recipient KEY] [--keep-daily N …]",
		Description: "The snapshot streams from the member into the bucket; nothing appears there unless it is complete\n" +
			"and etcd's checksum matched. A manifest (<name>.json) beside it records its revision and hashes.\n" +
			"Retention runs only after a successful save; a failure to prune is logged, and does not fail the save.\n\n" +
			backupExitCodes,
		Flags: flags,
		Action: withBackupFlags(map[backup.Field]string{backup.FieldBucket: "--to"}, func(c *cli.Context) error {
			if err := noArgsAndFormat(c); err != nil {
				return err
			}
			ccfg, err := clientConfig(c)
			if err != nil {
				return err
			}
			codec, err := codecFrom(c)
			if err != nil {
				return err
			}
			if tag := c.String("tag"); tag != "" {
				if err := backup.ValidateTag(tag); err != nil {
					return err
				}
			}
			policy, err := policyFrom(c)
			if err != nil {
				return err
			}
			lg, err := newLogger(c.String("log-level"))
			if err != nil {
				return err
			}
			defer lg.Sync()
			store, err := backup.OpenStore(c.Context, c.String("to"), storeOptions(c)...)
			if err != nil {
				return err
			}
			defer store.Close()
			limitMemory(c.String("to"))
			res, err := backup.Backup(c.Context, store, backup.SaveConfig{
				Endpoints: ccfg.Endpoints, Dial: dialer(ccfg), Member: c.String("member"), Tag: c.String("tag"),
				Codec: codec, CommandTimeout: ccfg.CommandTimeout,
				Progress: newProgress(c.Bool("quiet")), Logger: lg, EtcdopsVersion: etcdopsVersion(),
				AfterPrune: pitr.AfterPrune,
			}, policy)
			if err != nil {
				return err
			}
			m := res.Manifest
			if c.String("write-out") == "json" {
				return writeJSON(c.App.Writer, m)
			}
			fmt.Fprintf(c.App.Writer, "saved %s revision %d, %d keys, %s stored\n", m.Name, m.Revision, m.TotalKeys, humanize.IBytes(uint64(m.StoredSize)))
			return nil
		}),
	}
}

// limitMemory keeps a snapshot transfer's heap close to what it holds,
// unless GOGC or GOMEMLIMIT say otherwise: the stream reuses its buffers and
// allocates little (about 80 MB per GiB sent), so collecting after 10%
// growth costs next to nothing, where Go's default lets the heap double.
// Multipart uploads keep their parts in flight on top; the soft limit is a
// backstop.
func limitMemory(bucketURL string) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(10)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := int64(32 << 20)
	if !strings.HasPrefix(bucketURL, "file:") && !strings.HasPrefix(bucketURL, "mem:") {
		limit += backup.UploadMemory
	}
	debug.SetMemoryLimit(limit)
}

// codecFrom reads --compress and the age recipients.
func codecFrom(c *cli.Context) (backup.Codec, error) {
	keys := c.StringSlice("age-recipient")
	if f := c.String("age-recipients-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return backup.Codec{}, usageError(fmt.Errorf("--age-recipients-file: %w", err))
		}
		keys = append(keys, strings.Split(string(b), "\n")...)
	}
	rs, fps, err := backup.ParseRecipients(keys)
	if err != nil {
		return backup.Codec{}, err
	}
	if c.IsSet("age-recipients-file") && len(rs) == 0 {
		return backup.Codec{}, usageError(errors.New("--age-recipients-file: holds no age1… public key"))
	}
	return backup.Codec{Compress: c.Bool("compress"), Recipients: rs, Fingerprints: fps}, nil
}

// dialer connects etcd clients with the command's connection settings,
// tuned for snapshot streams.
func dialer(cfg *etcdclient.Config) backup.Dialer {
	return func(endpoints ...string) (*clientv3.Client, error) {
		c := *cfg
		c.Endpoints = endpoints
		return etcdclient.New(&c, nil, backup.StreamDialOptions()...)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }
