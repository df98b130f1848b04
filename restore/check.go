package restore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"path/filepath"
	"runtime/debug"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protowire"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
)

// checkDB checks every page of a snapshot's database that etcd's restore
// will read, and reads its facts (revision, keys, KV hash), in one open of
// it. etcd's restore must not open a damaged database: bolt's open then
// walks every page in a goroutine of its own that panics beyond any
// recover, and so does bolt's own consistency check (tx.Check) on a database
// without a synced freelist, which every etcd snapshot is. So the pages are
// walked here, in this goroutine, where damage is an error: every bucket's
// keys read through a cursor (bolt checks each page's id and type as it
// reads it), keys strictly in order, and a read outside the mapped file a
// panic (debug.SetPanicOnFault) instead of a crash. The database is closed
// when checkDB returns, so that its pages are no longer mapped while etcd's
// restore maps its copy.
func checkDB(ctx context.Context, path string) (f Facts, err error) {
	defer recoverTo(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		return f, fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	var ks keySpace
	err = db.View(func(tx *bolt.Tx) (err error) {
		// The key bucket, almost all of the pages, is read once below.
		if err := walkKeys(tx.Cursor(), schema.Key.Name()); err != nil {
			return err
		}
		ks, err = keySpaceOf(tx, math.MaxInt64, contentAndHashKV)
		return err
	})
	if err != nil {
		return f, err
	}
	if err := ctx.Err(); err != nil {
		return f, err
	}
	return Facts{Revision: ks.latest, CompactRevision: ks.compacted, Keys: ks.keys, Size: ks.size,
		KVHash: ks.hashKV, StorageVersion: ks.storageVersion, contentHash: ks.contentHash}, nil
}

// walkKeys reads every key under c and in the buckets it holds, except the
// bucket named skip, and refuses keys out of order.
func walkKeys(c *bolt.Cursor, skip []byte) error {
	var prev []byte
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			return fmt.Errorf("key %x after %x: out of order", k, prev)
		}
		prev = k
		if v != nil || bytes.Equal(k, skip) {
			continue
		}
		if b := c.Bucket().Bucket(k); b != nil {
			if err := walkKeys(b.Cursor(), nil); err != nil {
				return fmt.Errorf("bucket %s: %w", k, err)
			}
		}
	}
	return nil
}

// recoverTo turns a panic of bolt on a corrupt database into an error.
func recoverTo(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("corrupt database: %v", r)
	}
}

// keySpace is what readKeySpace found in a database.
type keySpace struct {
	latest, compacted int64
	// contentHash is crc32c of every revision's key and value up to the
	// revision asked for: equal for equal key spaces.
	contentHash uint32
	// hashKV is etcd's HashKV at that revision, and keys the live keys
	// there (only when asked for).
	hashKV          uint32
	keys            int64
	size            int64
	consistentIndex uint64
	term            uint64
	memberIDs       []string
	storageVersion  string
}

// What readKeySpace computes besides the database's metadata.
const (
	metaOnly         = iota
	content          // contentHash
	contentAndHashKV // contentHash, hashKV and keys
)

// readKeySpace reads a database without changing it: its newest revision,
// finished compaction, consistent index, members and storage version, and
// as what says, hashes of its key space up to rev.
func readKeySpace(path string, rev int64, what int) (ks keySpace, err error) {
	defer recoverTo(&err)
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		return ks, fmt.Errorf("open database %s: %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) (err error) {
		ks, err = keySpaceOf(tx, rev, what)
		return err
	})
	return ks, err
}

// keySpaceOf reads what readKeySpace reads, in tx.
func keySpaceOf(tx *bolt.Tx, rev int64, what int) (ks keySpace, err error) {
	ks.size = tx.Size()
	if meta := tx.Bucket(schema.Meta.Name()); meta != nil {
		if v := meta.Get(schema.FinishedCompactKeyName); len(v) >= 17 {
			ks.compacted = mvcc.BytesToRev(v).Main
		}
		if v := meta.Get(schema.MetaConsistentIndexKeyName); len(v) == 8 {
			ks.consistentIndex = binary.BigEndian.Uint64(v)
		}
		if v := meta.Get(schema.MetaTermKeyName); len(v) == 8 {
			ks.term = binary.BigEndian.Uint64(v)
		}
		if v := schema.ReadStorageVersionFromSnapshot(tx); v != nil {
			ks.storageVersion = v.String()
		}
	}
	if members := tx.Bucket(schema.Members.Name()); members != nil {
		members.ForEach(func(k, _ []byte) error {
			ks.memberIDs = append(ks.memberIDs, string(k))
			return nil
		})
	}
	keys := tx.Bucket(schema.Key.Name())
	if keys == nil {
		return ks, errors.New("database has no key bucket")
	}
	if k, _ := keys.Cursor().Last(); k != nil {
		ks.latest = mvcc.BytesToRev(k).Main
	}
	switch what {
	case content:
		ks.contentHash = hashKeys(keys, rev, nil)
	case contentAndHashKV:
		err = ks.hashBoth(keys, rev)
	}
	return ks, err
}

// hashKeys returns crc32c of the key bucket's revisions up to rev; with
// include, of those it says.
func hashKeys(keys *bolt.Bucket, rev int64, include func(k, v []byte) bool) uint32 {
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	h.Write(schema.Key.Name())
	c := keys.Cursor()
	for k, v := c.First(); k != nil && mvcc.BytesToRev(k).Main <= rev; k, v = c.Next() {
		if include == nil || include(k, v) {
			h.Write(k)
			h.Write(v)
		}
	}
	return h.Sum32()
}

// hashBoth computes the content hash, etcd's HashKV and the live keys at
// rev. HashKV (mvcc's hashByRev and kvHasher) leaves out, of the revisions
// up to the finished compaction, those that are not the latest revision of
// a live key at rev (unless no key is live), and a tombstone at the
// compaction revision.
func (ks *keySpace) hashBoth(keys *bolt.Bucket, rev int64) error {
	type last struct {
		rev  mvcc.Revision
		tomb bool
	}
	latest := map[string]last{}
	c := keys.Cursor()
	var prev []byte
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			return fmt.Errorf("bucket key: key %x after %x: out of order", k, prev)
		}
		prev = k
		r := mvcc.BytesToRev(k)
		if r.Main > rev {
			break
		}
		key, err := userKey(v)
		if err != nil {
			return fmt.Errorf("revision %d: %w", r.Main, err)
		}
		latest[string(key)] = last{r, mvcc.IsTombstone(k)}
	}
	for _, l := range latest {
		if !l.tomb {
			ks.keys++
		}
	}
	include := func(k, v []byte) bool {
		r := mvcc.BytesToRev(k)
		if r.Main > ks.compacted {
			return true
		}
		tomb := mvcc.IsTombstone(k)
		if ks.keys > 0 {
			key, _ := userKey(v)
			if l := latest[string(key)]; tomb || l.rev != r {
				return false
			}
		}
		return !(r.Main == ks.compacted && tomb)
	}
	// Both hashes are hashKeys', in one pass; while no revision is left
	// out of HashKV, they are one.
	tab := crc32.MakeTable(crc32.Castagnoli)
	update := func(h uint32, k, v []byte) uint32 { return crc32.Update(crc32.Update(h, tab, k), tab, v) }
	hashKV := crc32.Update(0, tab, schema.Key.Name())
	content, same := hashKV, true
	c = keys.Cursor()
	for k, v := c.First(); k != nil && mvcc.BytesToRev(k).Main <= rev; k, v = c.Next() {
		in := include(k, v)
		switch {
		case same && in:
			hashKV = update(hashKV, k, v)
			content = hashKV
		case same:
			content, same = update(hashKV, k, v), false
		default:
			content = update(content, k, v)
			if in {
				hashKV = update(hashKV, k, v)
			}
		}
	}
	ks.hashKV, ks.contentHash = hashKV, content
	return nil
}

// userKey returns the key of a marshaled mvccpb.KeyValue (field 1) without
// decoding, or copying, its value.
func userKey(kv []byte) ([]byte, error) {
	for len(kv) > 0 {
		num, typ, n := protowire.ConsumeTag(kv)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		kv = kv[n:]
		if num == 1 && typ == protowire.BytesType {
			key, n := protowire.ConsumeBytes(kv)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			return key, nil
		}
		n = protowire.ConsumeFieldValue(num, typ, kv)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		kv = kv[n:]
	}
	return nil, errors.New("key-value without a key")
}

// checkDataDir checks a written data dir as the member starting on it will
// see it, without changing it: the WAL is the member's own in the planned
// cluster and bootstraps exactly the planned members, the database's
// consistent index and term match the WAL (as etcd's own verify requires
// after a restore), and the key space is the snapshot's: its revision (plus
// any bump) and, with fullHash, every revision's key and value (crc32c).
func checkDataDir(dir string, p *Plan, m Member, s *Snapshot, fullHash bool) (keySpace, error) {
	lg := zap.NewNop()
	w, err := wal.OpenForRead(lg, filepath.Join(dir, "member", "wal"), walpb.Snapshot{})
	if err != nil {
		return keySpace{}, fmt.Errorf("WAL: %w", err)
	}
	metadata, hs, ents, err := w.ReadAll()
	w.Close()
	if err != nil {
		return keySpace{}, fmt.Errorf("WAL: %w", err)
	}
	var md etcdserverpb.Metadata
	if err := md.Unmarshal(metadata); err != nil {
		return keySpace{}, fmt.Errorf("WAL metadata: %w", err)
	}
	if got := types.ID(md.NodeID).String(); got != m.ID {
		return keySpace{}, fmt.Errorf("WAL is of member %s, expected %s (%s)", got, m.ID, m.Name)
	}
	if got := types.ID(md.ClusterID).String(); got != p.ClusterID {
		return keySpace{}, fmt.Errorf("WAL is of cluster %s, expected %s", got, p.ClusterID)
	}
	var added []string
	for _, e := range ents {
		var cc raftpb.ConfChange
		if e.Type != raftpb.EntryConfChange || cc.Unmarshal(e.Data) != nil || cc.Type != raftpb.ConfChangeAddNode {
			return keySpace{}, fmt.Errorf("WAL entry %d is not a member addition", e.Index)
		}
		added = append(added, types.ID(cc.NodeID).String())
	}
	if want := planIDs(p); !sameSet(added, want) {
		return keySpace{}, fmt.Errorf("WAL adds members %v, expected %v", added, want)
	}
	snapshot, err := snap.New(lg, filepath.Join(dir, "member", "snap")).Load()
	if err != nil {
		return keySpace{}, fmt.Errorf("raft snapshot: %w", err)
	}
	if snapshot.Metadata.Index != hs.Commit {
		return keySpace{}, fmt.Errorf("raft snapshot at index %d, WAL commits %d", snapshot.Metadata.Index, hs.Commit)
	}

	what := metaOnly
	if fullHash {
		what = content
	}
	ks, err := readKeySpace(filepath.Join(dir, "member", "snap", "db"), s.Revision, what)
	if err != nil {
		return ks, err
	}
	if ks.consistentIndex != hs.Commit || ks.term != hs.Term {
		return ks, fmt.Errorf("database at index %d term %d, WAL commits index %d term %d", ks.consistentIndex, ks.term, hs.Commit, hs.Term)
	}
	if !sameSet(ks.memberIDs, planIDs(p)) {
		return ks, fmt.Errorf("database lists members %v, expected %v", ks.memberIDs, planIDs(p))
	}
	if want := s.Revision + int64(p.RevisionBump); ks.latest != want {
		return ks, fmt.Errorf("database at revision %d, expected %d", ks.latest, want)
	}
	if fullHash && ks.contentHash != s.contentHash {
		return ks, fmt.Errorf("database's key space up to revision %d differs from the snapshot's (crc32c %d, the snapshot's %d)",
			s.Revision, ks.contentHash, s.contentHash)
	}
	return ks, nil
}

func planIDs(p *Plan) []string {
	var ids []string
	for _, m := range p.Members {
		ids = append(ids, m.ID)
	}
	return ids
}

// sameSet compares member IDs as sets, ignoring case and leading zeros.
func sameSet(a, b []string) bool {
	norm := func(ids []string) []string {
		out := make([]string, 0, len(ids))
		for _, id := range ids {
			if v, err := types.IDFromString(id); err == nil {
				out = append(out, v.String())
			} else {
				out = append(out, id)
			}
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(norm(a), norm(b))
}
