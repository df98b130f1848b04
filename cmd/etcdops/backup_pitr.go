package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"filippo.io/age"
	"github.com/urfave/cli/v2"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/pitr"
)

// logTags returns the tags of snaps (or only tag) whose log has segments,
// with their listings.
func logTags(c *cli.Context, store *backup.Store, snaps []backup.Snapshot) (map[string]pitr.Listing, []string, error) {
	var tags []string
	for _, s := range snaps {
		if !slices.Contains(tags, s.Name.Tag) {
			tags = append(tags, s.Name.Tag)
		}
	}
	if t := c.String("tag"); t != "" && !slices.Contains(tags, t) {
		tags = append(tags, t)
	}
	out := map[string]pitr.Listing{}
	var with []string
	for _, tag := range tags {
		l, err := pitr.List(c.Context, store, tag)
		if err != nil {
			return nil, nil, err
		}
		if len(l.Log) > 0 {
			out[tag] = l
			with = append(with, tag)
		}
	}
	return out, with, nil
}

// recoveries reads what each tag's log can restore to.
func recoveries(c *cli.Context, store *backup.Store, snaps []backup.Snapshot, ids []age.Identity) (map[string]pitr.Recovery, []string, error) {
	ls, tags, err := logTags(c, store, snaps)
	if err != nil {
		return nil, nil, err
	}
	out := map[string]pitr.Recovery{}
	for _, tag := range tags {
		out[tag] = pitr.Recoverable(c.Context, tag, ls[tag], pitr.Reader(store, ids))
	}
	return out, tags, nil
}

// rangeOf returns the range of rs that holds rev.
func rangeOf(rs []pitr.Range, rev int64) *pitr.Range {
	for i, r := range rs {
		if r.From <= rev && rev <= r.To {
			return &rs[i]
		}
	}
	return nil
}

// printRecovery prints a tag's log: its segments, the revisions and times it can restore to, its gaps.
func printRecovery(w io.Writer, r pitr.Recovery) {
	fmt.Fprintf(w, "log of %s: %d segments; recoverable %s", r.Tag, r.Segments, pitr.FormatRanges(r.Ranges))
	for _, h := range r.Holes {
		why := "segments missing"
		switch {
		case h.Recorded:
			why = "recorded"
		case h.BeforeLog:
			why = "before the log started"
		}
		fmt.Fprintf(w, "; gap %d-%d (%s)", h.From, h.To, why)
	}
	fmt.Fprintln(w)
}

// verifyLogs checks the logs of the tags of snaps (or --tag): every
// segment decodes, and the chain from each snapshot is contiguous.
func verifyLogs(c *cli.Context, store *backup.Store, ids []age.Identity) error {
	if c.NArg() > 0 {
		return usageError(fmt.Errorf("unexpected argument %q: --pitr checks the logs of every tag, or of --tag", c.Args().First()))
	}
	snaps, err := store.List(c.Context, c.String("tag"), true)
	if err != nil {
		return err
	}
	ls, tags, err := logTags(c, store, snaps)
	if err != nil {
		return err
	}
	if len(tags) == 0 {
		return errors.New("no point-in-time log in the bucket")
	}
	var results []*pitr.VerifyResult
	var bad []string
	for _, tag := range tags {
		res, err := pitr.Verify(c.Context, tag, ls[tag], pitr.Reader(store, ids), 4)
		if err != nil {
			return err
		}
		results = append(results, res)
		if len(res.Problems) > 0 {
			bad = append(bad, fmt.Sprintf("log of %s: %s", tag, strings.Join(res.Problems, "; ")))
		}
	}
	if c.String("write-out") == "json" {
		if err := writeJSON(c.App.Writer, results); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			fmt.Fprintf(c.App.Writer, "verified log of %s: %d segments, %d revisions, %d problems\n", r.Tag, r.Segments, r.Revisions, len(r.Problems))
			printRecovery(c.App.Writer, r.Recovery)
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}
