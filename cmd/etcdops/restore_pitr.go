package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/etcdops/etcdops/pitr"
	"github.com/etcdops/etcdops/restore"
)

// pointInTimeFlags choose a point of a tag's log, for restore and backup fetch.
func pointInTimeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "to-revision", Usage: "restore the tag's log to `REVISION`, or latest (its end)"},
		&cli.StringFlag{Name: "to-time", Usage: "restore the tag's log to the last revision received at or before `TIME` (RFC 3339, e.g. 2026-12-05T10:00:00Z)"},
	}
}

// pointInTime reads --to-revision and --to-time; nil when neither is set.
func pointInTime(c *cli.Context) (*restore.PointInTime, error) {
	rev, at := c.String("to-revision"), c.String("to-time")
	switch {
	case rev != "" && at != "":
		return nil, usageError(errors.New("--to-revision and --to-time: expected one of them, not both"))
	case at != "":
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return nil, usageError(fmt.Errorf("--to-time %q: expected a time as 2026-12-05T10:00:00Z (RFC 3339)", at))
		}
		return &restore.PointInTime{Time: t}, nil
	case rev == "latest":
		return &restore.PointInTime{Revision: pitr.Latest}, nil
	case rev != "":
		r, err := strconv.ParseInt(rev, 10, 64)
		if err != nil || r <= 0 {
			return nil, usageError(fmt.Errorf("--to-revision %q: expected a revision (a positive number) or latest", rev))
		}
		return &restore.PointInTime{Revision: r}, nil
	}
	return nil, nil
}

// openPointInTime is restore.OpenPointInTime with a target that the log
// cannot reach as bad input (exit 2): the message gives what it can reach.
func openPointInTime(c *cli.Context, src restore.Source, to restore.PointInTime) (*restore.Snapshot, *restore.PointInTimeResult, error) {
	s, res, err := restore.OpenPointInTime(c.Context, src, to)
	var re *pitr.RangeError
	if errors.As(err, &re) {
		flag := "--to-revision"
		if !to.Time.IsZero() {
			flag = "--to-time"
		}
		return nil, nil, usageError(fmt.Errorf("%s: %w", flag, err))
	}
	if err != nil {
		return nil, nil, restoreInputError(err)
	}
	return s, res, nil
}

func printPointInTime(w io.Writer, r *restore.PointInTimeResult) {
	ch := r.Chain
	fmt.Fprintf(w, "point in time: revision %d, from snapshot %s (revision %d) and %d log segments\n",
		ch.Target, ch.Base.Name, ch.Base.Revision, len(r.Segments))
	for _, s := range r.Segments {
		fmt.Fprintf(w, "  %s\n", s)
	}
	if rr := r.Replay; rr != nil {
		fmt.Fprintf(w, "  replayed %d revisions (%d events, %d duplicates) in %s\n", rr.Revisions, rr.Events, rr.Duplicates, rr.Took.Round(time.Millisecond))
	}
}
