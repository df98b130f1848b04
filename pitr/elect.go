package pitr

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// ElectionPrefix is where the members of a cluster that could stream a
// tag's log (serve --backup-pitr) run for it: an etcd election at
// ElectionPrefix+<tag>, on a lease of each candidate. Exactly one streams;
// when it dies or loses quorum its lease ends, within ElectionTTL, and the
// next candidate streams, from the last revision in the bucket.
const ElectionPrefix = "/etcdops/pitr/streamer/"

// ElectionTTL is a candidate's lease: how soon another member takes over
// from one that died.
const ElectionTTL = 3 * time.Second

// RunElected runs s (its Run) only while this process, named member,
// leads the election of s.Tag, and campaigns again whenever it stops
// leading, until ctx ends. eligible, when set, tells whether the member
// may run at all: while it says no (a learner, whose writes etcd refuses),
// the member does not campaign and looks again every half second.
func RunElected(ctx context.Context, s *Streamer, member string, eligible func() bool) error {
	s.defaults()
	lg := s.Logger.With(zap.String("election", ElectionPrefix+s.Tag))
	waiting := false
	for ctx.Err() == nil {
		if eligible != nil && !eligible() {
			if !waiting {
				lg.Info("not running for the log: not a voting member (a learner) yet", zap.String("member", member))
				waiting = true
			}
			sleep(ctx, retryDelay)
			continue
		}
		waiting = false
		if err := s.lead(ctx, member, lg); err != nil && ctx.Err() == nil {
			lg.Warn("log streaming stopped; campaigning again", zap.Error(err))
			sleep(ctx, retryDelay)
		}
	}
	return nil
}

// lead campaigns once, and streams while it leads.
func (s *Streamer) lead(ctx context.Context, member string, lg *zap.Logger) error {
	sess, err := concurrency.NewSession(s.Client, concurrency.WithTTL(int(ElectionTTL.Seconds())), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("election session: %w", err)
	}
	defer sess.Close() // revokes the lease: another member takes over at once
	e := concurrency.NewElection(sess, ElectionPrefix+s.Tag)
	if err := e.Campaign(ctx, member); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	lg.Info("elected to stream the log", zap.String("member", member))
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		select {
		case <-sess.Done():
			lg.Warn("lost the election's lease (quorum lost or member stopped); stopping the log")
			cancel()
		case <-lctx.Done():
		}
	}()
	err = s.Run(lctx)
	if ctx.Err() == nil && err == nil {
		err = fmt.Errorf("no longer leader")
	}
	return err
}
