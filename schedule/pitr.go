package schedule

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/pitr"
)

// PITR is a job's point-in-time log: besides its snapshots, a streamer
// writes every change to the job's bucket (see pitr.Streamer).
type PITR struct {
	Interval    time.Duration
	SegmentSize int
	// Member, when set, streams only while this member leads the tag's
	// election (serve: one member of the cluster streams at a time).
	Member string
	// Eligible, with Member, tells whether the member may run for the
	// election now (serve: not while it is a learner); nil is always.
	Eligible func() bool
	// KeepWithin, when positive, is the job's point-in-time window: its
	// retention keeps every point of the log within it recoverable
	// (pitr.KeepWithin).
	KeepWithin time.Duration
}

// pitrConfig validates a job's log settings; nil when it has none.
func (jc JobConfig) pitrConfig() (*PITR, error) {
	if !jc.PITR {
		if jc.PITRKeepWithin != "" {
			return nil, &ConfigError{Job: jc.Name, Field: "pitr-keep-within", Err: errors.New("given without pitr: it keeps the change log that pitr turns on")}
		}
		if jc.PITRInterval != "" || jc.PITRSegmentSize != "" {
			return nil, &ConfigError{Job: jc.Name, Field: "pitr", Err: errors.New("not set: pitr-interval and pitr-segment-size tune the log it turns on")}
		}
		return nil, nil
	}
	if strings.TrimSpace(jc.Cron) == "" {
		return nil, &ConfigError{Job: jc.Name, Field: "pitr", Err: errors.New("needs cron: the log follows the job's snapshots")}
	}
	p := &PITR{Interval: pitr.DefaultInterval, SegmentSize: pitr.DefaultSegmentSize}
	if jc.PITRInterval != "" {
		d, err := time.ParseDuration(jc.PITRInterval)
		if err != nil || d < 10*time.Millisecond || d > time.Hour {
			return nil, &ConfigError{Job: jc.Name, Field: "pitr-interval", Err: fmt.Errorf("%q: expected a duration from 10ms to 1h, such as 1s", jc.PITRInterval)}
		}
		p.Interval = d
	}
	if jc.PITRSegmentSize != "" {
		n, err := ParseSize(jc.PITRSegmentSize)
		if err != nil || n < 1<<10 || n > 1<<30 {
			return nil, &ConfigError{Job: jc.Name, Field: "pitr-segment-size", Err: fmt.Errorf("%q: expected a size from 1KiB to 1GiB, such as 16MiB", jc.PITRSegmentSize)}
		}
		p.SegmentSize = int(n)
	}
	if jc.PITRKeepWithin != "" {
		d, err := pitr.ParseWindow(jc.PITRKeepWithin)
		if err != nil {
			return nil, &ConfigError{Job: jc.Name, Field: "pitr-keep-within", Err: err}
		}
		p.KeepWithin = d
	}
	return p, nil
}

// pitrRetry is how long a log that cannot stream waits before trying again.
const pitrRetry = 5 * time.Second

// runPITR streams the job's log until ctx ends, starting it again after
// any failure (a cluster not reachable, a bucket failing).
func (s *Scheduler) runPITR(ctx context.Context, st *jobState) {
	for ctx.Err() == nil {
		if err := s.streamOnce(ctx, st); err != nil && ctx.Err() == nil {
			st.lg.Error("log streaming failed; retrying", zap.Error(err), zap.Duration("retry-in", pitrRetry))
			t := time.NewTimer(pitrRetry)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
}

func (s *Scheduler) streamOnce(ctx context.Context, st *jobState) error {
	tag, err := s.tagOf(ctx, st)
	if err != nil {
		return err
	}
	cli, err := st.Save.Dial(st.Save.Endpoints...)
	if err != nil {
		return err
	}
	defer cli.Close()
	streamer := &pitr.Streamer{Client: cli, Store: st.store, Tag: tag, Codec: st.Save.Codec,
		Interval: st.PITR.Interval, SegmentSize: st.PITR.SegmentSize, HoldID: st.PITR.Member,
		Timeout: st.Save.CommandTimeout, Logger: st.lg.With(zap.String("log", pitr.LogPrefix(tag))),
		Metrics: st.pitrMetrics, Now: s.cfg.Now, Snapshot: s.pitrSnapshot(st, tag)}
	if st.PITR.Member != "" {
		return pitr.RunElected(ctx, streamer, st.PITR.Member, st.PITR.Eligible)
	}
	return streamer.Run(ctx)
}

// pitrSnapshot is the log's full snapshot (none to start from, or a gap
// to pass): a save of the job, named after now.
func (s *Scheduler) pitrSnapshot(st *jobState, tag string) pitr.SnapshotFunc {
	return func(ctx context.Context) (*backup.Manifest, error) {
		cfg := st.Save
		cfg.Tag, cfg.Logger = tag, st.lg
		for try := 0; ; try++ {
			cfg.At = s.cfg.Now()
			m, err := backup.Save(ctx, st.store, cfg)
			if !errors.Is(err, backup.ErrNameTaken) || try == 2 {
				return m, err
			}
			// A save of this second exists (a scheduled run): the next second is free.
			t := time.NewTimer(time.Second)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
	}
}
