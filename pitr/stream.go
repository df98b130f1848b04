package pitr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/backup"
)

// Defaults of a Streamer.
const (
	DefaultInterval    = time.Second
	DefaultSegmentSize = 16 << 20
	// DefaultHoldEvery is how often at most the hold key is rewritten.
	DefaultHoldEvery = 5 * time.Second
)

// SnapshotFunc takes a full snapshot of the cluster into the log's bucket,
// under the log's tag (backup save's routine), and returns its manifest.
type SnapshotFunc func(ctx context.Context) (*backup.Manifest, error)

// Streamer writes a cluster's changes to a tag's log: one watch on the
// whole keyspace, from the revision after the tag's newest snapshot or
// log, whichever is further, flushed as a segment so that every change is
// in the bucket within about Interval of its arrival (the flush starts
// early by the time the last upload took), or sooner when SegmentSize
// bytes of changes are waiting. Nothing is written
// while nothing changes. Memory is bounded: while a segment's worth is
// waiting (a flush in flight or failing), the watch is not read, and etcd
// holds the changes back (gRPC flow control) instead of this process.
type Streamer struct {
	Client *clientv3.Client
	Store  *backup.Store
	Tag    string
	Codec  backup.Codec
	// Snapshot takes a full snapshot: when the tag has none to start from,
	// and at once when the watch cannot resume (compacted), after the gap
	// is recorded.
	Snapshot SnapshotFunc
	// Interval and SegmentSize: see above; zero takes the defaults.
	Interval    time.Duration
	SegmentSize int
	// HoldID names this streamer's hold key, HoldPrefix+Tag+"/"+HoldID
	// (the member or host it runs on); empty is "streamer".
	HoldID string
	// HoldEvery is how often at most the hold is rewritten [5s].
	HoldEvery time.Duration
	// Timeout bounds each short request to etcd [5s].
	Timeout time.Duration
	Logger  *zap.Logger
	Metrics *Metrics
	Now     func() time.Time
}

func (s *Streamer) defaults() {
	if s.Interval <= 0 {
		s.Interval = DefaultInterval
	}
	if s.SegmentSize <= 0 {
		s.SegmentSize = DefaultSegmentSize
	}
	if s.HoldID == "" {
		s.HoldID = "streamer"
	}
	if s.HoldEvery <= 0 {
		s.HoldEvery = DefaultHoldEvery
	}
	if s.Timeout <= 0 {
		s.Timeout = 5 * time.Second
	}
	if s.Logger == nil {
		s.Logger = zap.NewNop()
	}
	if s.Metrics == nil {
		s.Metrics = NewMetrics(nil, "")
	}
	if s.Now == nil {
		s.Now = time.Now
	}
}

// retryDelay is how long a streamer waits before it reconnects its watch
// or retries a failed flush.
const retryDelay = 500 * time.Millisecond

// Run streams until ctx ends; what is buffered then is flushed before it
// returns (within Timeout). It returns nil when ctx ended it, and an error
// only when it cannot go on at all (no start revision can be found).
func (s *Streamer) Run(ctx context.Context) error {
	s.defaults()
	st, err := s.start(ctx)
	if err != nil {
		return err
	}
	hold := newHold(s.Client, HoldPrefix+s.Tag+"/"+s.HoldID, s.Timeout)
	defer hold.release()
	st.hold = hold
	if err := hold.set(ctx, st.next-1); err != nil {
		s.Logger.Warn("log hold not written; compaction may pass the log", zap.Error(err))
	}
	s.Metrics.setStreaming(true, s.Now())
	defer func() { s.Metrics.setStreaming(false, s.Now()) }()
	s.Metrics.flushed(st.flushed, s.Now())
	s.Logger.Info("streaming the log", zap.String("tag", s.Tag), zap.Int64("from-revision", st.next))
	defer func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.Timeout)
		defer cancel()
		if err := st.flush(fctx); err != nil {
			s.Logger.Warn("final flush failed", zap.Error(err))
		}
	}()
	for ctx.Err() == nil {
		err := st.watch(ctx)
		var ce *compactedError
		switch {
		case ctx.Err() != nil:
		case errors.As(err, &ce):
			if err := st.resumeAfterGap(ctx, ce.rev); err != nil {
				s.Logger.Error("cannot resume the log after a gap", zap.Error(err))
				sleep(ctx, retryDelay)
			}
		default:
			s.Logger.Warn("watch ended; resuming", zap.Int64("from-revision", st.next), zap.Error(err))
			sleep(ctx, retryDelay)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// streamState is one Run's state. Only Run's goroutine touches it.
type streamState struct {
	*Streamer
	next     int64      // the first revision not yet received
	buf      []Revision // received, not yet flushed
	bufBytes int
	flushed  int64 // the last revision in the bucket
	// changed is the last flushed revision that wrote more than holds.
	changed int64
	hold    *hold
	leases  map[int64]bool // lease IDs already recorded by this run
	cluster int64          // the cluster's revision, as the last response said
	// lastFlush is when the last flush started; upload how long the last
	// segment took to write (see due).
	lastFlush time.Time
	upload    time.Duration
	// waiting is when the oldest buffered revision arrived (this process's
	// clock, not Now, which tests may stop).
	waiting time.Time
}

// start finds where the log goes on: after the newest snapshot of the
// tag (its manifest's revision, read from the snapshot itself) or after
// the last revision of its log, whichever is further. With neither, it
// takes a snapshot first.
func (s *Streamer) start(ctx context.Context) (*streamState, error) {
	logLast, err := LastLogged(ctx, s.Store, s.Tag)
	if err != nil {
		return nil, err
	}
	snapRev := int64(0)
	snap, err := s.Store.Find(ctx, "latest", s.Tag)
	switch {
	case errors.Is(err, backup.ErrNotFound) && logLast == 0:
		m, err := s.Snapshot(ctx)
		if err != nil {
			return nil, fmt.Errorf("log %s: first snapshot: %w", s.Tag, err)
		}
		snapRev = m.Revision
	case errors.Is(err, backup.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("log %s: %w", s.Tag, err)
	default:
		snapRev = snap.Manifest.Revision
	}
	if snapRev == backup.RevisionUnknown && logLast == 0 {
		return nil, fmt.Errorf("log %s: the newest snapshot's revision is unknown: nothing to start the log from", s.Tag)
	}
	from := max(BaseRevision(snapRev), logLast)
	return &streamState{Streamer: s, next: from + 1, flushed: from, changed: from, leases: map[int64]bool{}}, nil
}

// LastLogged is the last revision of tag's log in the bucket (the end of
// a segment or a gap), 0 when it has none.
func LastLogged(ctx context.Context, store *backup.Store, tag string) (int64, error) {
	names, err := ListLog(ctx, store, tag)
	if err != nil {
		return 0, fmt.Errorf("log %s: %w", tag, err)
	}
	var last int64
	for _, n := range names {
		last = max(last, n.Last)
	}
	return last, nil
}

// compactedError: the watch cannot start at the wanted revision, etcd
// compacted it; rev is the compaction's revision.
type compactedError struct{ rev int64 }

func (e *compactedError) Error() string {
	return fmt.Sprintf("revision compacted (compaction at %d)", e.rev)
}

// resumeAfterGap flushes what was received, takes a snapshot, records the
// gap between the log's end and the snapshot and goes on from it.
func (st *streamState) resumeAfterGap(ctx context.Context, compactRev int64) error {
	if err := st.flush(ctx); err != nil {
		return err
	}
	st.Logger.Warn("the log cannot go on: etcd compacted its next revision; taking a full snapshot",
		zap.Int64("next-revision", st.next), zap.Int64("compacted-at", compactRev))
	m, err := st.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("snapshot after a gap: %w", err)
	}
	if m.Revision < st.next {
		return fmt.Errorf("snapshot %s at revision %d does not pass the gap at %d", m.Name, m.Revision, st.next)
	}
	g := GapRecord{Tag: st.Tag, First: st.next, Last: m.Revision, Time: st.Now().UTC(),
		Reason: fmt.Sprintf("etcd compacted the log's next revision (compaction at %d)", compactRev), Snapshot: m.Name}
	if err := WriteGap(ctx, st.Store, g); err != nil {
		return err
	}
	st.Metrics.gapRecorded(g)
	st.Logger.Warn("gap recorded in the log", zap.Int64("first", g.First), zap.Int64("last", g.Last), zap.String("snapshot", m.Name))
	st.next, st.flushed, st.changed = m.Revision+1, m.Revision, m.Revision
	st.Metrics.flushed(m.Revision, st.Now())
	return nil
}

// watch reads one watch stream from st.next until it fails or ctx ends,
// and flushes on the way.
func (st *streamState) watch(ctx context.Context) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	stream, err := pb.NewWatchClient(st.Client.ActiveConnection()).Watch(wctx)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	// The whole keyspace: from key \0 to range end \0 (etcd's "all keys").
	req := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte{0}, RangeEnd: []byte{0}, StartRevision: st.next}}}
	if err := stream.Send(req); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	// One response at a time: while the loop below does not take it, the
	// reader does not read the next (the back-pressure).
	type recv struct {
		resp *pb.WatchResponse
		err  error
	}
	in := make(chan recv)
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		for {
			resp, err := stream.Recv()
			select {
			case in <- recv{resp, err}:
			case <-wctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(max(st.Interval/10, 10*time.Millisecond))
	defer tick.Stop()
	for {
		var take chan recv
		if st.bufBytes < st.SegmentSize {
			take = in
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-take:
			if r.err != nil {
				return fmt.Errorf("watch: %w", r.err)
			}
			if err := st.receive(ctx, r.resp); err != nil {
				return err
			}
			if st.bufBytes >= st.SegmentSize {
				st.flushOrLog(ctx)
			}
		case <-tick.C:
			if st.due() {
				st.flushOrLog(ctx)
				st.Metrics.lag(st.cluster, st.flushed, st.oldest(), st.Now())
			}
		}
	}
}

// receive adds a watch response's revisions to the buffer.
func (st *streamState) receive(ctx context.Context, resp *pb.WatchResponse) error {
	if resp.CompactRevision != 0 {
		return &compactedError{rev: resp.CompactRevision}
	}
	if resp.Canceled {
		return fmt.Errorf("watch canceled by etcd: %s", resp.CancelReason)
	}
	if resp.Header != nil {
		st.cluster = max(st.cluster, resp.Header.Revision)
	}
	now := st.Now()
	for _, ev := range resp.Events {
		rev := ev.Kv.ModRevision
		if n := len(st.buf); n == 0 || st.buf[n-1].Rev != rev {
			if rev != st.next {
				// Revisions are contiguous and never split across responses:
				// anything else is a fault, never a log to write.
				return fmt.Errorf("watch sent revision %d, expected %d", rev, st.next)
			}
			if len(st.buf) == 0 {
				st.waiting = time.Now()
			}
			st.buf = append(st.buf, Revision{Rev: rev, Received: now})
			st.next = rev + 1
		}
		r := &st.buf[len(st.buf)-1]
		r.Events = append(r.Events, ev)
		st.bufBytes += eventBytes(ev)
		if id := ev.Kv.Lease; id != 0 && ev.Type == mvccpb.PUT && !st.leases[id] {
			r.Leases = append(r.Leases, Lease{ID: id, TTL: st.grantedTTL(ctx, id)})
			if len(st.leases) >= maxLeasesRemembered {
				clear(st.leases) // recording one again is harmless; a map without bound is not
			}
			st.leases[id] = true
		}
	}
	return nil
}

// maxLeasesRemembered bounds the lease IDs a run remembers as recorded.
const maxLeasesRemembered = 100000

// grantedTTL asks etcd for lease id's granted TTL; -1 when it is already
// gone (expired or revoked: the deletions of its keys follow in the log)
// or cannot be asked.
func (st *streamState) grantedTTL(ctx context.Context, id int64) int64 {
	ctx, cancel := context.WithTimeout(ctx, st.Timeout)
	defer cancel()
	resp, err := st.Client.TimeToLive(ctx, clientv3.LeaseID(id))
	if err != nil {
		st.Logger.Warn("cannot read a lease's TTL", zap.Int64("lease", id), zap.Error(err))
		return -1
	}
	if resp.TTL == -1 || resp.GrantedTTL <= 0 {
		return -1
	}
	return resp.GrantedTTL
}

// due tells whether to flush now: the oldest change waiting would reach
// Interval in the bucket if its upload took as long as the last one (a
// quarter of Interval at the least), or, with nothing waiting, Interval
// has passed since the last flush (which moves the hold).
func (st *streamState) due() bool {
	if len(st.buf) == 0 {
		return time.Since(st.lastFlush) >= st.Interval
	}
	wait := max(st.Interval-st.upload, st.Interval/4)
	return time.Since(st.waiting) >= wait
}

func (st *streamState) oldest() time.Time {
	if len(st.buf) == 0 {
		return time.Time{}
	}
	return st.buf[0].Received
}

// flushOrLog flushes; a failure keeps the buffer for the next try.
func (st *streamState) flushOrLog(ctx context.Context) {
	if err := st.flush(ctx); err != nil && ctx.Err() == nil {
		st.Metrics.flushFailures.Inc()
		st.Logger.Warn("log flush failed; retrying at the next interval", zap.Int("revisions", len(st.buf)), zap.Error(err))
	}
}

// flush writes the buffer as one segment, then moves the hold.
func (st *streamState) flush(ctx context.Context) error {
	st.lastFlush = time.Now()
	if len(st.buf) > 0 {
		n, size, taken, err := WriteSegment(ctx, st.Store, st.Tag, st.Codec, st.buf)
		if err != nil {
			return err
		}
		st.upload = time.Since(st.lastFlush)
		st.Metrics.segment(size)
		st.Logger.Debug("log segment written", zap.String("name", n.String()), zap.Int64("bytes", size), zap.Bool("already-there", taken))
		for _, r := range st.buf {
			if !holdsOnly(r) {
				st.changed = r.Rev
			}
		}
		st.flushed = n.Last
		st.Metrics.flushed(n.Last, st.Now())
		clear(st.buf) // let the events go
		st.buf, st.bufBytes = st.buf[:0], 0
		if cap(st.buf) > 4096 {
			st.buf = nil
		}
	}
	return st.moveHold(ctx)
}

// holdsOnly tells a revision that only wrote log holds: the log keeps it,
// but it does not move the hold, or every hold write would make another.
func holdsOnly(r Revision) bool {
	for _, ev := range r.Events {
		if !strings.HasPrefix(string(ev.Kv.Key), HoldPrefix) {
			return false
		}
	}
	return true
}

// moveHold rewrites the hold to the flushed revision, at most every
// HoldEvery, and only when revisions other than hold writes were flushed
// past it.
func (st *streamState) moveHold(ctx context.Context) error {
	if st.hold == nil || st.changed <= st.hold.rev || st.Now().Sub(st.hold.at) < st.HoldEvery {
		return nil
	}
	return st.hold.set(ctx, st.flushed)
}
