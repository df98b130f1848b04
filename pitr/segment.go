package pitr

import (
	"bufio"
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

// SegmentReader reads a segment revision by revision. The checksum covers
// the whole segment, so it is known only at the end: a caller that acts
// on revisions before Next returned io.EOF must undo them on any error.
type SegmentReader struct {
	r    *bufio.Reader
	crc  hash.Hash32
	off  int64
	revs int64
	last int64
	body bytes.Buffer
	done bool
}

// NewSegmentReader reads the header of a segment from r.
func NewSegmentReader(r io.Reader) (*SegmentReader, error) {
	sr := &SegmentReader{r: bufio.NewReader(r), crc: crc32.New(castagnoli)}
	magic := make([]byte, len(segmentMagic))
	if _, err := io.ReadFull(sr, magic); err != nil || string(magic) != segmentMagic {
		return nil, sr.corrupt("no segment header")
	}
	v, err := binary.ReadUvarint(sr)
	if err != nil {
		return nil, sr.corrupt("no format version")
	}
	if v != SegmentVersion {
		return nil, fmt.Errorf("%w: %d (this etcdops reads %d)", ErrVersion, v, SegmentVersion)
	}
	return sr, nil
}

// Read and ReadByte feed the checksum with what the decoder consumes.
func (sr *SegmentReader) Read(p []byte) (int, error) {
	n, err := sr.r.Read(p)
	sr.crc.Write(p[:n])
	sr.off += int64(n)
	return n, err
}

func (sr *SegmentReader) ReadByte() (byte, error) {
	b, err := sr.r.ReadByte()
	if err == nil {
		sr.crc.Write([]byte{b})
		sr.off++
	}
	return b, err
}

func (sr *SegmentReader) corrupt(format string, args ...any) error {
	return &CorruptError{Offset: sr.off, Reason: fmt.Sprintf(format, args...)}
}

// Next returns the next revision, or io.EOF once the end record and the
// checksum were read and found right. Any other error ends the segment.
func (sr *SegmentReader) Next() (Revision, error) {
	if sr.done {
		return Revision{}, io.EOF
	}
	kind, err := sr.ReadByte()
	if err != nil {
		return Revision{}, sr.corrupt("cut short: no end record")
	}
	n, err := binary.ReadUvarint(sr)
	if err != nil || n > maxRecord {
		return Revision{}, sr.corrupt("bad record length")
	}
	sr.body.Reset()
	if m, _ := io.CopyN(&sr.body, sr, int64(n)); m != int64(n) {
		return Revision{}, sr.corrupt("cut short in a record")
	}
	switch kind {
	case kindRevision:
		r, err := decodeRevision(sr.body.Bytes())
		if err == nil {
			err = checkRevision(r, sr.last)
		}
		if err != nil {
			return Revision{}, sr.corrupt("%v", err)
		}
		sr.revs++
		sr.last = r.Rev
		return r, nil
	case kindEnd:
		return Revision{}, sr.end()
	default:
		return Revision{}, sr.corrupt("unknown record kind %q", kind)
	}
}

// end checks the end record in sr.body, then the trailer.
func (sr *SegmentReader) end() error {
	count, k := binary.Uvarint(sr.body.Bytes())
	if k <= 0 || k != sr.body.Len() || count != uint64(sr.revs) {
		return sr.corrupt("end record does not count the %d revisions read", sr.revs)
	}
	want := sr.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(sr.r, sum[:]); err != nil {
		return sr.corrupt("cut short: no checksum")
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return sr.corrupt("checksum %08x, content sums to %08x", got, want)
	}
	sr.off += 4
	if _, err := sr.r.ReadByte(); err != io.EOF {
		return sr.corrupt("bytes after the checksum")
	}
	if sr.revs == 0 {
		return sr.corrupt("no revisions")
	}
	sr.done = true
	return io.EOF
}

func decodeRevision(b []byte) (Revision, error) {
	d := decoder{b: b}
	r := Revision{Rev: int64(d.uvarint())}
	r.Received = time.Unix(0, d.varint()).UTC()
	nev := d.uvarint()
	if nev > uint64(len(b)) {
		return Revision{}, errors.New("event count past the record")
	}
	r.Events = make([]*mvccpb.Event, 0, nev)
	for range nev {
		ev := &mvccpb.Event{}
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

// DecodeSegment reads a whole segment from r and checks it.
func DecodeSegment(r io.Reader) ([]Revision, error) {
	sr, err := NewSegmentReader(r)
	if err != nil {
		return nil, err
	}
	var revs []Revision
	for {
		rev, err := sr.Next()
		if err == io.EOF {
			return revs, nil
		}
		if err != nil {
			return nil, err
		}
		revs = append(revs, rev)
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
