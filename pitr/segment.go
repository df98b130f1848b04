package pitr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The segment format, version 1. A segment is, before the job's codec
// (zstd, age) is applied:
//
//	header   "ETCDPITR" (8 bytes), format version (uvarint)
//	records  each: a kind byte, a uvarint length n, n bytes of body
//	         kind 'R' (a revision), body:
//	           rev (uvarint), received (varint, Unix nanoseconds),
//	           events (uvarint count; each a uvarint length and an
//	             mvccpb.Event in protobuf),
//	           leases (uvarint count; each ID varint, TTL varint)
//	         kind 'E' (the end, once, last), body:
//	           the number of revisions (uvarint)
//	trailer  crc32c (Castagnoli) of every byte before it, 4 bytes big endian
//
// Revisions come in strictly increasing order, each with at least one
// event, and every event's key-value carries the revision as its mod
// revision (etcd sets it on puts and deletes alike). A segment cut short
// (no end record or no trailer), with bytes after the trailer, or whose
// checksum differs, is corrupt: ErrCorrupt.
const (
	segmentMagic   = "ETCDPITR"
	SegmentVersion = 1

	kindRevision = 'R'
	kindEnd      = 'E'

	// maxRecord bounds one record's body: more than etcd's largest request
	// (--max-request-bytes, at most 2 GiB in theory; 1.5 MiB by default)
	// ever makes in practice, and far below what a decoder can hold.
	maxRecord = 512 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors of decoding a segment, to tell by errors.Is.
var (
	// ErrCorrupt: the bytes are not a whole, unaltered segment (torn,
	// truncated, altered, or not a segment at all).
	ErrCorrupt = errors.New("corrupt log segment")
	// ErrVersion: a segment of a format version this etcdops does not read.
	ErrVersion = errors.New("log segment of an unknown format version")
)

// CorruptError says where and why a segment is corrupt; it wraps ErrCorrupt.
type CorruptError struct {
	// Offset is of the raw (decoded) segment bytes; -1 when the fault is
	// not at one place.
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("%v: %s", ErrCorrupt, e.Reason)
	}
	return fmt.Sprintf("%v at byte %d: %s", ErrCorrupt, e.Offset, e.Reason)
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// SegmentWriter writes one segment to w, revision by revision.
type SegmentWriter struct {
	w    io.Writer
	crc  hash.Hash32
	n    int64
	revs int64
	last int64
	buf  []byte
	err  error
}

// NewSegmentWriter writes the header of a segment to w.
func NewSegmentWriter(w io.Writer) (*SegmentWriter, error) {
	sw := &SegmentWriter{w: w, crc: crc32.New(castagnoli)}
	hdr := binary.AppendUvarint([]byte(segmentMagic), SegmentVersion)
	if err := sw.write(hdr); err != nil {
		return nil, err
	}
	return sw, nil
}

func (sw *SegmentWriter) write(p []byte) error {
	if sw.err != nil {
		return sw.err
	}
	n, err := sw.w.Write(p)
	sw.crc.Write(p[:n])
	sw.n += int64(n)
	if err != nil {
		sw.err = err
	}
	return err
}

// Write appends one revision. It refuses a revision that the decoder would
// refuse (out of order, no events, an event of another revision).
func (sw *SegmentWriter) Write(r Revision) error {
	if err := checkRevision(r, sw.last); err != nil {
		return err
	}
	body := sw.buf[:0]
	body = binary.AppendUvarint(body, uint64(r.Rev))
	body = binary.AppendVarint(body, r.Received.UnixNano())
	body = binary.AppendUvarint(body, uint64(len(r.Events)))
	for _, ev := range r.Events {
		b, err := ev.Marshal()
		if err != nil {
			return fmt.Errorf("encode revision %d: %w", r.Rev, err)
		}
		body = binary.AppendUvarint(body, uint64(len(b)))
		body = append(body, b...)
	}
	body = binary.AppendUvarint(body, uint64(len(r.Leases)))
	for _, l := range r.Leases {
		body = binary.AppendVarint(body, l.ID)
		body = binary.AppendVarint(body, l.TTL)
	}
	if len(body) > maxRecord {
		return fmt.Errorf("encode revision %d: %d bytes, more than a segment holds in one revision (%d)", r.Rev, len(body), maxRecord)
	}
	sw.buf = body
	if err := sw.write(recordHeader(kindRevision, len(body))); err != nil {
		return err
	}
	if err := sw.write(body); err != nil {
		return err
	}
	sw.revs++
	sw.last = r.Rev
	return nil
}

func recordHeader(kind byte, n int) []byte {
	return binary.AppendUvarint([]byte{kind}, uint64(n))
}

// checkRevision is what every revision of a segment must be, after a
// revision last (0 for the first).
func checkRevision(r Revision, last int64) error {
	switch {
	case r.Rev <= 0:
		return fmt.Errorf("revision %d: not a revision", r.Rev)
	case r.Rev <= last:
		return fmt.Errorf("revision %d after %d: revisions must increase", r.Rev, last)
	case len(r.Events) == 0:
		return fmt.Errorf("revision %d: no events", r.Rev)
	}
	for _, ev := range r.Events {
		if ev == nil || ev.Kv == nil || ev.Kv.ModRevision != r.Rev || len(ev.Kv.Key) == 0 {
			return fmt.Errorf("revision %d: an event without a key of this revision", r.Rev)
		}
		if ev.Type != mvccpb.PUT && ev.Type != mvccpb.DELETE {
			return fmt.Errorf("revision %d: event type %d", r.Rev, ev.Type)
		}
	}
	return nil
}

// Len is how many bytes were written so far.
func (sw *SegmentWriter) Len() int64 { return sw.n }

// Close writes the end record and the checksum. It does not close w.
func (sw *SegmentWriter) Close() error {
	body := binary.AppendUvarint(nil, uint64(sw.revs))
	if err := sw.write(append(recordHeader(kindEnd, len(body)), body...)); err != nil {
		return err
	}
	return sw.write(binary.BigEndian.AppendUint32(nil, sw.crc.Sum32()))
}

// EncodeSegment writes revs to w as one segment.
func EncodeSegment(w io.Writer, revs []Revision) error {
	sw, err := NewSegmentWriter(w)
	if err != nil {
		return err
	}
	for _, r := range revs {
		if err := sw.Write(r); err != nil {
			return err
		}
	}
	return sw.Close()
}

// maxSegment bounds a whole segment as read: a record at its largest
// with room to spare (segments are flushed at --pitr-segment-size, 16 MiB
// by default).
const maxSegment = 2 * maxRecord

// DecodeSegment reads a whole segment from r and checks it: first its
// checksum, then every record, so that no revision of a segment that is
// not whole and unaltered is ever returned.
func DecodeSegment(r io.Reader) ([]Revision, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSegment+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSegment {
		return nil, &CorruptError{Offset: -1, Reason: fmt.Sprintf("more than %d bytes", maxSegment)}
	}
	return decodeSegment(b)
}

// decodeSegment decodes the segment b; see DecodeSegment.
func decodeSegment(b []byte) ([]Revision, error) {
	corrupt := func(off int, format string, args ...any) error {
		return &CorruptError{Offset: int64(off), Reason: fmt.Sprintf(format, args...)}
	}
	if len(b) < len(segmentMagic) || string(b[:len(segmentMagic)]) != segmentMagic {
		return nil, corrupt(0, "no segment header")
	}
	v, n := binary.Uvarint(b[len(segmentMagic):])
	if n <= 0 {
		return nil, corrupt(len(segmentMagic), "no format version")
	}
	if v != SegmentVersion {
		return nil, fmt.Errorf("%w: %d (this etcdops reads %d)", ErrVersion, v, SegmentVersion)
	}
	off := len(segmentMagic) + n
	end := len(b) - 4
	if end < off {
		return nil, corrupt(len(b), "cut short: no checksum")
	}
	if got, want := binary.BigEndian.Uint32(b[end:]), crc32.Checksum(b[:end], castagnoli); got != want {
		return nil, corrupt(end, "checksum %08x, content sums to %08x", got, want)
	}
	var revs []Revision
	var last int64
	for {
		if off >= end {
			return nil, corrupt(off, "cut short: no end record")
		}
		kind := b[off]
		size, n := binary.Uvarint(b[off+1 : end])
		if n <= 0 || size > uint64(end-off-1-n) {
			return nil, corrupt(off, "bad record length")
		}
		body := b[off+1+n : off+1+n+int(size)]
		switch kind {
		case kindRevision:
			r, err := decodeRevision(body)
			if err == nil {
				err = checkRevision(r, last)
			}
			if err != nil {
				return nil, corrupt(off, "%v", err)
			}
			revs = append(revs, r)
			last = r.Rev
		case kindEnd:
			count, k := binary.Uvarint(body)
			switch {
			case k <= 0 || k != len(body) || count != uint64(len(revs)):
				return nil, corrupt(off, "end record does not count the %d revisions read", len(revs))
			case off+1+n+int(size) != end:
				return nil, corrupt(off, "bytes after the end record")
			case len(revs) == 0:
				return nil, corrupt(off, "no revisions")
			}
			return revs, nil
		default:
			return nil, corrupt(off, "unknown record kind %q", kind)
		}
		off += 1 + n + int(size)
	}
}

// minEventBytes is the least an event takes in a record: its length, and
// a key-value (tag and length) with a key (tag, length, a byte) and a mod
// revision (tag, a byte).
const minEventBytes = 8

func decodeRevision(b []byte) (Revision, error) {
	d := decoder{b: b}
	r := Revision{Rev: int64(d.uvarint())}
	r.Received = time.Unix(0, d.varint()).UTC()
	nev := d.uvarint()
	if nev > uint64(len(d.b))/minEventBytes {
		return Revision{}, errors.New("event count past the record")
	}
	// One allocation each for the revision's events and key-values.
	r.Events = make([]*mvccpb.Event, 0, nev)
	evs, kvs := make([]mvccpb.Event, nev), make([]mvccpb.KeyValue, nev)
	for i := range nev {
		ev := &evs[i]
		ev.Kv = &kvs[i]
		if err := ev.Unmarshal(d.bytes(d.uvarint())); err != nil && d.err == nil {
			d.err = fmt.Errorf("event: %w", err)
		}
		if d.err != nil {
			return Revision{}, d.err
		}
		r.Events = append(r.Events, ev)
	}
	nl := d.uvarint()
	if nl > uint64(len(b)) {
		return Revision{}, errors.New("lease count past the record")
	}
	for range nl {
		r.Leases = append(r.Leases, Lease{ID: d.varint(), TTL: d.varint()})
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("bytes after the revision")
	}
	if d.err != nil {
		return Revision{}, d.err
	}
	return r, nil
}

// decoder reads varints and byte strings from a record's body; the first
// error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errors.New("record cut short")
	}
}

// SameChanges tells whether a and b are the same revision with the same
// events (key, value, create and mod revision, version, lease), as two
// streamers that both logged it record it. Received times and first-seen
// leases may differ between streamers and are not compared.
func SameChanges(a, b Revision) bool {
	if a.Rev != b.Rev || len(a.Events) != len(b.Events) {
		return false
	}
	for i := range a.Events {
		x, y := a.Events[i], b.Events[i]
		if x.Type != y.Type || (x.Kv == nil) != (y.Kv == nil) {
			return false
		}
		if x.Kv != nil && !sameKV(x.Kv, y.Kv) {
			return false
		}
	}
	return true
}

func sameKV(x, y *mvccpb.KeyValue) bool {
	return bytes.Equal(x.Key, y.Key) && bytes.Equal(x.Value, y.Value) && x.CreateRevision == y.CreateRevision &&
		x.ModRevision == y.ModRevision && x.Version == y.Version && x.Lease == y.Lease
}
