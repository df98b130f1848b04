package backup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.etcd.io/etcd/server/v3/storage/schema"
)

// revisionScanner finds a snapshot's own revision while the snapshot
// streams past, so that no local copy is needed: the main revision of the
// last key in etcd's "key" bucket, which is what `etcdutl snapshot status`
// reports. A snapshot is a bbolt file written in page order (both meta
// pages first), but a B+tree's pages can come before or after their
// parents, so the scanner keeps 8 bytes per page (a branch page's last
// child, or a leaf page's last revision) and walks the key bucket's
// rightmost path at the end. Only one node is buffered at a time.
//
// The layout constants are bbolt's (go.etcd.io/bbolt/internal/common),
// little-endian as on every platform etcd releases for but s390x.
type revisionScanner struct {
	pageSize  int
	size      int64 // database size: pages × pageSize; the trailer follows
	rootRoot  uint64
	keyRoot   uint64 // the key bucket's root page, once known
	keyKnown  bool
	inline    bool  // the key bucket lives inline in the root bucket
	inlineRev int64 // its last revision then
	pages     []uint64

	off  int64  // bytes of the stream consumed
	base uint64 // the page that win starts with
	win  []byte // bytes from page base on, held until they can be decided on
	buf  []byte // win's buffer
	err  error
}

const (
	pageHeaderSize  = 16
	elementSize     = 16
	metaOffset      = pageHeaderSize
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	branchPageFlag  = 0x01
	leafPageFlag    = 0x02
	bucketLeafFlag  = 0x01
	bucketHeaderLen = 16
	// maxNode bounds the look-ahead for one node and its overflow pages.
	maxNode = 64 << 20
	// revBytesLen is the length of an etcd revision key: main, '_', sub.
	revBytesLen = 17

	kindBranch = 1
	kindLeaf   = 2
)

var errLayout = errors.New("snapshot is not a bbolt database etcdops can read")

// Write takes the next bytes of the snapshot. Every page is looked at as a
// possible node: freed pages keep stale nodes, and a freed node's overflow
// pages may have been reused, so page headers cannot be trusted to skip
// ahead. A page is a node when its header names its own page id; stale or
// accidental ones only fill slots that no live branch points to.
//
// Pages are read where they lie in p; only a node (or page) that p ends in
// the middle of is copied, and then topped up with just what it lacks.
func (s *revisionScanner) Write(p []byte) (int, error) {
	n := len(p)
	if s.err != nil || s.off >= s.size && s.pageSize != 0 {
		return n, nil
	}
	if s.pageSize != 0 {
		p = p[:min(int64(len(p)), s.size-s.off)]
	}
	s.off += int64(len(p))
	if s.pageSize == 0 {
		s.hold(p)
		if s.readMeta() {
			s.win = s.win[s.scanPages(s.win, false):]
		}
		return n, nil
	}
	for len(p) > 0 && s.err == nil {
		if len(s.win) == 0 {
			used := s.scanPages(p, false)
			s.hold(p[used:])
			break
		}
		k := min(s.lacks(), len(p))
		s.hold(p[:k])
		p = p[k:]
		s.win = s.win[s.scanPages(s.win, false):]
	}
	return n, nil
}

// lacks returns how many more bytes the window needs before its first page
// can be decided on: the rest of that page, or of the node starting there.
func (s *revisionScanner) lacks() int {
	if len(s.win) < s.pageSize {
		return s.pageSize - len(s.win)
	}
	return max(s.nodeLen(s.win), s.pageSize) - len(s.win)
}

// hold appends b to the window, reusing one buffer.
func (s *revisionScanner) hold(b []byte) {
	if len(b) == 0 {
		return
	}
	if len(s.win)+len(b) > cap(s.win) {
		if need := len(s.win) + len(b); cap(s.buf) < need {
			s.buf = make([]byte, 0, max(need, 2*cap(s.buf)))
		}
		s.win = append(s.buf[:0], s.win...)
	}
	s.win = append(s.win, b...)
}

// readMeta reads meta page 0, which the stream starts with.
func (s *revisionScanner) readMeta() bool {
	if len(s.win) < 2*pageHeaderSize+48 {
		return false
	}
	m := s.win[metaOffset:]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != boltVersion {
		s.err = errLayout
		return false
	}
	s.pageSize = int(le.Uint32(m[8:]))
	s.rootRoot = le.Uint64(m[16:])
	hwm := le.Uint64(m[40:]) // the high-water mark: pages in the file
	if s.pageSize < 512 || s.pageSize > 1<<20 || hwm < 3 || hwm > 1<<32 {
		s.err = errLayout
		return false
	}
	s.size = int64(hwm) * int64(s.pageSize)
	// Grown as pages arrive: a damaged meta page must not size it.
	s.pages = make([]uint64, 0, min(hwm, 1<<16))
	if s.off > s.size { // the trailer came in the same write
		s.win = s.win[:len(s.win)-int(s.off-s.size)]
		s.off = s.size
	}
	return true
}

// scanPages summarizes every page at the start of b (page s.base on) whose
// node is complete in b, and returns the bytes it is done with. At the end
// of the database (final) it drops what is left.
func (s *revisionScanner) scanPages(b []byte, final bool) int {
	ps, used := s.pageSize, 0
	for s.err == nil && len(b)-used >= ps {
		w := b[used:]
		need := s.nodeLen(w)
		if need > len(w) && !final {
			break
		}
		if need > 0 && need <= len(w) {
			s.summarize(w[:need])
		}
		used += ps
		s.base++
	}
	return used
}

// nodeLen returns the bytes the node at the window's start spans, or 0 if
// the page there is no branch or leaf node.
func (s *revisionScanner) nodeLen(w []byte) int {
	le := binary.LittleEndian
	if s.base < 2 || le.Uint64(w[0:]) != s.base || le.Uint16(w[8:])&(branchPageFlag|leafPageFlag) == 0 {
		return 0
	}
	length := (1 + int64(le.Uint32(w[12:]))) * int64(s.pageSize)
	if length > maxNode || int64(s.base)*int64(s.pageSize)+length > s.size {
		return 0
	}
	return int(length)
}

// summarize records a node's summary and, for the root bucket's root,
// where the key bucket is.
func (s *revisionScanner) summarize(node []byte) {
	sum, err := nodeSummary(node)
	if err != nil {
		return // a stale or accidental node; a live one is missed at the end
	}
	if n := int(s.base) + 1; n > len(s.pages) {
		s.pages = slices.Grow(s.pages, n-len(s.pages))[:n]
	}
	s.pages[s.base] = sum
	if s.base == s.rootRoot {
		s.err = s.findKeyBucket(node)
	}
}

// nodeSummary is kindBranch with the last child's page id, or kindLeaf
// with the last key's main revision (0 for keys that are not revisions).
func nodeSummary(node []byte) (uint64, error) {
	le := binary.LittleEndian
	flags, count := le.Uint16(node[8:]), int(le.Uint16(node[10:]))
	if count == 0 {
		if flags&branchPageFlag != 0 {
			return 0, errLayout
		}
		return kindLeaf, nil
	}
	e := pageHeaderSize + (count-1)*elementSize
	if e+elementSize > len(node) {
		return 0, errLayout
	}
	if flags&branchPageFlag != 0 {
		return le.Uint64(node[e+8:])<<2 | kindBranch, nil
	}
	key, _, _, err := leafElement(node, count-1)
	if err != nil {
		return 0, err
	}
	var rev uint64
	// mvcc.BytesToRev panics on a key whose separator is not '_': such a key
	// is no revision (a damaged page, or another bucket's key).
	if len(key) >= revBytesLen && key[8] == '_' {
		rev = uint64(mvcc.BytesToRev(key).Main)
	}
	return rev<<2 | kindLeaf, nil
}

// leafElement returns element i of a leaf node.
func leafElement(node []byte, i int) (key, value []byte, flags uint32, err error) {
	le := binary.LittleEndian
	e := pageHeaderSize + i*elementSize
	if e+elementSize > len(node) {
		return nil, nil, 0, errLayout
	}
	flags = le.Uint32(node[e:])
	pos, ksize, vsize := int(le.Uint32(node[e+4:])), int(le.Uint32(node[e+8:])), int(le.Uint32(node[e+12:]))
	start := e + pos
	if pos < 0 || start+ksize+vsize > len(node) {
		return nil, nil, 0, errLayout
	}
	return node[start : start+ksize], node[start+ksize : start+ksize+vsize], flags, nil
}

// findKeyBucket reads the key bucket's location from the root bucket's
// root node. etcd's root bucket has a dozen entries: always one leaf.
func (s *revisionScanner) findKeyBucket(node []byte) error {
	le := binary.LittleEndian
	if le.Uint16(node[8:])&leafPageFlag == 0 {
		return fmt.Errorf("%w: the root bucket spans several pages", errLayout)
	}
	for i := 0; i < int(le.Uint16(node[10:])); i++ {
		key, value, flags, err := leafElement(node, i)
		if err != nil {
			return err
		}
		if flags&bucketLeafFlag == 0 || !bytes.Equal(key, schema.Key.Name()) {
			continue
		}
		if len(value) < bucketHeaderLen {
			return errLayout
		}
		s.keyKnown = true
		if s.keyRoot = le.Uint64(value); s.keyRoot != 0 {
			return nil
		}
		// A small bucket's page is stored inline, after its header.
		s.inline = true
		sum, err := nodeSummary(value[bucketHeaderLen:])
		if err != nil || sum&3 != kindLeaf {
			return errLayout
		}
		s.inlineRev = int64(sum >> 2)
		return nil
	}
	return fmt.Errorf("%w: no key bucket", errLayout)
}

// Revision returns the snapshot's revision once the whole database went
// through the scanner.
func (s *revisionScanner) Revision() (int64, error) {
	if s.pageSize != 0 {
		s.scanPages(s.win, true)
		s.win = nil
	}
	switch {
	case s.err != nil:
		return 0, s.err
	case s.pageSize == 0 || s.off < s.size:
		return 0, fmt.Errorf("%w: truncated", errLayout)
	case !s.keyKnown:
		return 0, fmt.Errorf("%w: no key bucket", errLayout)
	case s.inline:
		return s.inlineRev, nil
	}
	id := s.keyRoot
	for depth := 0; depth < 64 && id < uint64(len(s.pages)); depth++ {
		switch sum := s.pages[id]; sum & 3 {
		case kindBranch:
			id = sum >> 2
		case kindLeaf:
			return int64(sum >> 2), nil
		default:
			return 0, fmt.Errorf("%w: page %d of the key bucket is missing", errLayout, id)
		}
	}
	return 0, fmt.Errorf("%w: key bucket tree is malformed", errLayout)
}
