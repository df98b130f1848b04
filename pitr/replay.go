package pitr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/lease"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.etcd.io/etcd/server/v3/storage/schema"
)

// ReplayOptions tune Replay.
type ReplayOptions struct {
	Logger *zap.Logger
	// BatchLimit is how many revisions go into one bolt commit; 0 means
	// defaultBatchLimit.
	BatchLimit int
}

// defaultBatchLimit keeps bolt's dirty pages of one commit to some tens
// of MiB with small values while making commits rare.
const defaultBatchLimit = 50_000

// ReplayResult is what Replay applied.
type ReplayResult struct {
	// From is the database's revision before the replay (the snapshot's).
	From int64 `json:"from_revision"`
	// To is its revision after.
	To int64 `json:"to_revision"`
	// Revisions and Events count what was applied; Bytes are the keys and
	// values written.
	Revisions int64 `json:"revisions"`
	Events    int64 `json:"events"`
	Bytes     int64 `json:"bytes"`
	// Duplicates counts revisions the log holds more than once (found
	// identical to the applied one).
	Duplicates int64 `json:"duplicates,omitempty"`
	// LeasesGranted counts leases the replay recreated.
	LeasesGranted int `json:"leases_granted"`
	// Took is how long the replay ran: fetching, decoding and applying the
	// log (the fetch runs ahead of the apply), then the fsync.
	Took time.Duration `json:"took_ns"`
}

// Errors of Replay, to tell by errors.Is.
var (
	// ErrIncomplete: the log lacks revisions between the snapshot and the
	// target (a *MissingError says which).
	ErrIncomplete = errors.New("log incomplete")
	// ErrMismatch: the log and the database disagree (a *MismatchError
	// says where), or the log holds one revision twice with different
	// contents.
	ErrMismatch = errors.New("log does not match the database")
	// ErrBeforeSnapshot: the target precedes the snapshot's revision.
	ErrBeforeSnapshot = errors.New("target revision precedes the snapshot")
)

// MissingError names the revisions missing from a log, From through To.
type MissingError struct{ From, To int64 }

func (e *MissingError) Error() string {
	if e.From == e.To {
		return fmt.Sprintf("%v: revision %d is missing", ErrIncomplete, e.From)
	}
	return fmt.Sprintf("%v: revisions %d through %d are missing", ErrIncomplete, e.From, e.To)
}

func (e *MissingError) Unwrap() error { return ErrIncomplete }

// MismatchError says where the log and the database disagree.
type MismatchError struct {
	Rev    int64
	Key    []byte
	Reason string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%v: revision %d, key %q: %s", ErrMismatch, e.Rev, e.Key, e.Reason)
}

func (e *MismatchError) Unwrap() error { return ErrMismatch }

// Latest, as Replay's target, replays every revision revs yields.
const Latest = 0

// Replay applies revisions to the etcd database at path (a copy of a
// snapshot's: it is changed in place, and left half replayed on error)
// through revision target, with etcd's own storage code, offline: each
// revision written into etcd's key bucket as etcd's mvcc store writes a
// write transaction (etcd's backend, its key encoding and schema), with
// create revisions and versions computed as etcd computes them, so that
// every revision, create revision, version and lease comes out as the
// cluster wrote it. Instead of etcd's in-memory index (a B-tree of every
// revision, which cost two thirds of the replay's time and most of its
// memory) it keeps a hash of the live keys' state. It checks each put
// against the log's key-value and refuses on any difference, and refuses when revisions are missing between the
// database's revision and the target. Revisions that the database already
// has are skipped; one the replay applied before must be identical.
//
// Leases are recreated with the IDs and TTLs the log gives, by a lessor that
// never becomes primary, so that nothing expires during the replay; keys
// that expired in the cluster come as the deletes the cluster made. Commits
// are batched and nothing is fsynced until the end. revs is read until the
// target; Replay stops reading (breaks the iteration) there.
func Replay(ctx context.Context, path string, revs iter.Seq2[Revision, error], target int64, opts ReplayOptions) (res *ReplayResult, err error) {
	start := time.Now()
	lg := opts.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	// etcd's storage code exits or panics on a write error (a full disk):
	// here it becomes an error.
	elg := lg.WithOptions(zap.IncreaseLevel(zapcore.WarnLevel), zap.WithFatalHook(zapcore.WriteThenPanic)).Named("etcd")
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("replay %s: etcd's storage: %v", path, r)
		}
	}()
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	limit := opts.BatchLimit
	if limit <= 0 {
		limit = defaultBatchLimit
	}
	bcfg := backend.DefaultBackendConfig(elg)
	bcfg.Path = path
	bcfg.UnsafeNoFsync = true
	bcfg.BatchLimit = limit
	bcfg.BatchInterval = time.Hour
	bcfg.MmapSize = backend.InitialMmapSize
	be := backend.New(bcfg)
	closed := false
	defer func() {
		if !closed {
			be.Close()
		}
	}()
	le := lease.NewLessor(elg, be, nil, lease.LessorConfig{MinLeaseTTL: 1})
	defer le.Stop()
	// etcd's store reads the database's revision as etcd does (the last
	// key, or a compaction past it); the replay then writes the key
	// bucket itself (see replayer.apply).
	s := mvcc.NewStore(elg, be, le, mvcc.StoreConfig{})
	from := s.Rev()
	if err := s.Close(); err != nil {
		return nil, fmt.Errorf("replay %s: %w", path, err)
	}
	if target != Latest && target < from {
		return nil, fmt.Errorf("%w: target %d, snapshot at %d", ErrBeforeSnapshot, target, from)
	}
	keys, err := loadKeys(be)
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", path, err)
	}
	r := &replayer{be: be, le: le, keys: keys, res: &ReplayResult{From: from, To: from}}
	if err := r.run(ctx, revs, target); err != nil {
		return nil, fmt.Errorf("replay %s: %w", path, err)
	}
	be.ForceCommit()
	closed = true
	if err := be.Close(); err != nil {
		return nil, fmt.Errorf("replay %s: %w", path, err)
	}
	if err := syncFile(path); err != nil {
		return nil, fmt.Errorf("replay %s: %w", path, err)
	}
	r.res.Took = time.Since(start)
	lg.Info("replayed the log", zap.Int64("from", r.res.From), zap.Int64("to", r.res.To),
		zap.Int64("revisions", r.res.Revisions), zap.Duration("took", r.res.Took))
	return r.res, nil
}

type replayer struct {
	be backend.Backend
	le lease.Lessor
	// keys are the live keys' state: what etcd's in-memory index would
	// answer a put, without its B-tree of every revision.
	keys map[string]keyState
	res  *ReplayResult
}

// keyState is a live key's create revision and version.
type keyState struct{ create, version int64 }

func (r *replayer) run(ctx context.Context, revs iter.Seq2[Revision, error], target int64) error {
	if target != Latest && r.res.To >= target {
		return nil
	}
	for rev, err := range revs {
		if err != nil {
			return err
		}
		if r.res.Revisions%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		switch next := r.res.To + 1; {
		case rev.Rev <= r.res.From:
			continue
		case rev.Rev < next:
			if err := r.sameAsApplied(rev); err != nil {
				return err
			}
			r.res.Duplicates++
			continue
		case target != Latest && rev.Rev > target && next > target:
			return nil
		case rev.Rev > next:
			to := rev.Rev - 1
			if target != Latest {
				to = min(to, target)
			}
			return &MissingError{From: next, To: to}
		}
		if err := r.apply(rev); err != nil {
			return err
		}
		if r.res.To == target {
			return nil
		}
	}
	if target != Latest && r.res.To < target {
		return &MissingError{From: r.res.To + 1, To: target}
	}
	return nil
}

// apply writes one revision in one batch of etcd's backend.
func (r *replayer) apply(rev Revision) error {
	if len(rev.Events) == 0 {
		return &MismatchError{Rev: rev.Rev, Reason: "the log holds the revision without events"}
	}
	for _, l := range rev.Leases {
		switch _, err := r.le.Grant(lease.LeaseID(l.ID), l.TTL); {
		case err == nil:
			r.res.LeasesGranted++
		case !errors.Is(err, lease.ErrLeaseExists):
			return fmt.Errorf("revision %d: lease %x: %w", rev.Rev, l.ID, err)
		}
	}
	for _, ev := range rev.Events {
		if ev.Kv == nil {
			return &MismatchError{Rev: rev.Rev, Reason: "an event without a key"}
		}
		if ev.Type == mvccpb.PUT && ev.Kv.Lease != 0 && r.le.Lookup(lease.LeaseID(ev.Kv.Lease)) == nil {
			return &MismatchError{Rev: rev.Rev, Key: ev.Kv.Key, Reason: fmt.Sprintf("lease %x is neither in the database nor in the log", ev.Kv.Lease)}
		}
	}
	tx := r.be.BatchTx()
	tx.LockOutsideApply()
	err := r.write(tx, rev)
	tx.Unlock()
	if err != nil {
		return err
	}
	r.res.To = rev.Rev
	r.res.Revisions++
	r.res.Events += int64(len(rev.Events))
	return nil
}

// write puts a revision's events into etcd's key bucket as etcd's mvcc
// store writes them (storeTxnWrite.put and .delete in etcd 3.6): each at
// revision {rev, its index in the revision}, a put as the key-value
// marshalled, a delete as a tombstone (the revision marked 't', the key
// alone). Create revision and version come from the key's state as etcd
// computes them, and each must be what the log says. Leases need nothing
// written per key: etcd keeps which keys a lease holds in memory only,
// rebuilt from the key-values when it opens the database.
//
// On a mismatch, the events of the revision written before it stay: the
// database is left half replayed, as Replay says.
func (r *replayer) write(tx backend.BatchTx, rev Revision) error {
	for i, ev := range rev.Events {
		kv := ev.Kv
		st, live := r.keys[string(kv.Key)]
		at := mvcc.RevToBytes(mvcc.Revision{Main: rev.Rev, Sub: int64(i)}, mvcc.NewRevBytes())
		out := mvccpb.KeyValue{Key: kv.Key}
		switch ev.Type {
		case mvccpb.PUT:
			if !live {
				st = keyState{create: rev.Rev}
			}
			st.version++
			out = mvccpb.KeyValue{Key: kv.Key, Value: kv.Value, CreateRevision: st.create, ModRevision: rev.Rev,
				Version: st.version, Lease: kv.Lease}
			if err := matchesEvent(&out, ev); err != nil {
				return &MismatchError{Rev: rev.Rev, Key: kv.Key, Reason: err.Error()}
			}
			r.keys[string(kv.Key)] = st
			r.res.Bytes += int64(len(kv.Key) + len(kv.Value))
		case mvccpb.DELETE:
			if !live {
				return &MismatchError{Rev: rev.Rev, Key: kv.Key, Reason: "the log deletes a key the database does not hold"}
			}
			at = append(at, tombstoneMark)
			delete(r.keys, string(kv.Key))
			r.res.Bytes += int64(len(kv.Key))
		default:
			return &MismatchError{Rev: rev.Rev, Key: kv.Key, Reason: fmt.Sprintf("event type %d", ev.Type)}
		}
		// bolt keeps the value until the commit: one buffer per value.
		v := make([]byte, out.Size())
		if _, err := out.MarshalToSizedBuffer(v); err != nil {
			return fmt.Errorf("revision %d: %w", rev.Rev, err)
		}
		tx.UnsafeSeqPut(schema.Key, at, v)
	}
	return nil
}

// tombstoneMark is the byte etcd's mvcc appends to a revision for a
// tombstone (mvcc.IsTombstone).
const tombstoneMark = 't'

// loadKeys reads the live keys' state from the key bucket, in revision
// order, as etcd's store rebuilds its index.
func loadKeys(be backend.Backend) (map[string]keyState, error) {
	keys := map[string]keyState{}
	tx := be.ReadTx()
	tx.RLock()
	defer tx.RUnlock()
	err := tx.UnsafeForEach(schema.Key, func(k, v []byte) error {
		var kv mvccpb.KeyValue
		if err := kv.Unmarshal(v); err != nil {
			return fmt.Errorf("key bucket at revision %d: %w", mvcc.BytesToRev(k).Main, err)
		}
		if mvcc.IsTombstone(k) {
			delete(keys, string(kv.Key))
		} else {
			keys[string(kv.Key)] = keyState{create: kv.CreateRevision, version: kv.Version}
		}
		return nil
	})
	return keys, err
}

// matchesEvent compares what etcd's store wrote for an event with the event.
func matchesEvent(got *mvccpb.KeyValue, ev *mvccpb.Event) error {
	want := ev.Kv
	if ev.Type == mvccpb.DELETE {
		if got.ModRevision != 0 || !bytes.Equal(got.Key, want.Key) {
			return errors.New("the store deleted another key")
		}
		return nil
	}
	switch {
	case got.ModRevision != want.ModRevision:
		return fmt.Errorf("mod revision %d, the log says %d", got.ModRevision, want.ModRevision)
	case got.CreateRevision != want.CreateRevision:
		return fmt.Errorf("create revision %d, the log says %d", got.CreateRevision, want.CreateRevision)
	case got.Version != want.Version:
		return fmt.Errorf("version %d, the log says %d", got.Version, want.Version)
	case got.Lease != want.Lease:
		return fmt.Errorf("lease %x, the log says %x", got.Lease, want.Lease)
	}
	return nil
}

// sameAsApplied checks a revision the replay applied already against what
// it wrote: the key bucket's entries of that revision, in order.
func (r *replayer) sameAsApplied(rev Revision) error {
	from := mvcc.RevToBytes(mvcc.Revision{Main: rev.Rev}, mvcc.NewRevBytes())
	to := mvcc.RevToBytes(mvcc.Revision{Main: rev.Rev + 1}, mvcc.NewRevBytes())
	tx := r.be.BatchTx()
	tx.LockOutsideApply()
	keys, vals := tx.UnsafeRange(schema.Key, from, to, 0)
	tx.Unlock()
	differ := func(reason string) error {
		return &MismatchError{Rev: rev.Rev, Reason: "the log holds the revision twice, differently: " + reason}
	}
	if len(keys) != len(rev.Events) {
		return differ(fmt.Sprintf("%d events, %d applied", len(rev.Events), len(keys)))
	}
	for i, ev := range rev.Events {
		var kv mvccpb.KeyValue
		if err := kv.Unmarshal(vals[i]); err != nil {
			return fmt.Errorf("revision %d: read back: %w", rev.Rev, err)
		}
		tomb := mvcc.IsTombstone(keys[i])
		if tomb != (ev.Type == mvccpb.DELETE) || ev.Kv == nil || !bytes.Equal(kv.Key, ev.Kv.Key) {
			return differ(fmt.Sprintf("event %d", i))
		}
		if !tomb && (!bytes.Equal(kv.Value, ev.Kv.Value) || matchesEvent(&kv, ev) != nil) {
			return differ(fmt.Sprintf("event %d (key %q)", i, kv.Key))
		}
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
