package pitr

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
	"testing/iotest"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// sampleRevisions is a small log: puts, a leased put, a delete and a
// multi-key transaction.
func sampleRevisions() []Revision {
	at := time.Date(2026, 12, 5, 10, 0, 0, 123456789, time.UTC)
	put := func(rev int64, key, val string, create, version, lease int64) *mvccpb.Event {
		return &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(key), Value: []byte(val),
			CreateRevision: create, ModRevision: rev, Version: version, Lease: lease}}
	}
	del := func(rev int64, key string) *mvccpb.Event {
		return &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}}
	}
	return []Revision{
		{Rev: 5, Received: at, Events: []*mvccpb.Event{put(5, "a", "1", 5, 1, 0)}},
		{Rev: 6, Received: at.Add(time.Millisecond), Events: []*mvccpb.Event{put(6, "l", "x", 6, 1, 0x1234)},
			Leases: []Lease{{ID: 0x1234, TTL: 30}}},
		{Rev: 7, Received: at.Add(2 * time.Millisecond), Events: []*mvccpb.Event{del(7, "a")}},
		{Rev: 9, Received: at.Add(3 * time.Millisecond), Events: []*mvccpb.Event{
			put(9, "t1", "", 9, 1, 0), put(9, "t2", string(bytes.Repeat([]byte{0, 255}, 300)), 3, 4, 0), del(9, "l")}},
	}
}

// sameRevisions fails t unless got and want are the same revisions, received at the same times,
// with the same leases.
func sameRevisions(t testing.TB, got, want []Revision) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d revisions, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !SameChanges(g, w) || !g.Received.Equal(w.Received) || !slices.Equal(g.Leases, w.Leases) {
			t.Fatalf("revision %d:\n%+v\nwant\n%+v", i, g, w)
		}
	}
}

func encode(t testing.TB, revs []Revision) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := EncodeSegment(&b, revs); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestSegmentRoundTrip(t *testing.T) {
	revs := sampleRevisions()
	got, err := DecodeSegment(bytes.NewReader(encode(t, revs)))
	if err != nil {
		t.Fatal(err)
	}
	sameRevisions(t, got, revs)
}

// Every cut and every altered byte of a segment is found: ErrCorrupt, never revisions.
func TestSegmentTornOrAltered(t *testing.T) {
	b := encode(t, sampleRevisions())
	for i := 0; i < len(b); i++ {
		if _, err := DecodeSegment(bytes.NewReader(b[:i])); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("segment cut at byte %d of %d: err %v, want ErrCorrupt", i, len(b), err)
		}
		for _, bit := range []byte{1, 0x80} {
			c := bytes.Clone(b)
			c[i] ^= bit
			_, err := DecodeSegment(bytes.NewReader(c))
			if !errors.Is(err, ErrCorrupt) && !(i == len(segmentMagic) && errors.Is(err, ErrVersion)) {
				t.Fatalf("byte %d flipped by %#x: err %v, want ErrCorrupt", i, bit, err)
			}
		}
	}
	if _, err := DecodeSegment(bytes.NewReader(append(bytes.Clone(b), 0))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a byte after the checksum: err %v, want ErrCorrupt", err)
	}
}

func TestSegmentVersion(t *testing.T) {
	b := encode(t, sampleRevisions())
	b[len(segmentMagic)] = SegmentVersion + 1
	if _, err := DecodeSegment(bytes.NewReader(b)); !errors.Is(err, ErrVersion) {
		t.Fatalf("err %v, want ErrVersion", err)
	}
}

// A failing read is that error, not a corrupt segment: a network fault is retried, corruption is not.
func TestSegmentReadError(t *testing.T) {
	b := encode(t, sampleRevisions())
	boom := errors.New("connection reset")
	_, err := DecodeSegment(io.MultiReader(bytes.NewReader(b[:len(b)/2]), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("err %v, want the read's error", err)
	}
}

// The writer refuses what the reader would refuse.
func TestSegmentWriterRefuses(t *testing.T) {
	ok := sampleRevisions()
	for name, revs := range map[string][]Revision{
		"no revisions":     nil,
		"out of order":     {ok[1], ok[0]},
		"repeated":         {ok[0], ok[0]},
		"no events":        {{Rev: 3}},
		"other revision":   {{Rev: 4, Events: ok[0].Events}},
		"event without kv": {{Rev: 5, Events: []*mvccpb.Event{{}}}},
	} {
		var b bytes.Buffer
		err := EncodeSegment(&b, revs)
		if err == nil && len(revs) > 0 {
			t.Errorf("%s: encoded", name)
		}
		if err == nil {
			if _, err := DecodeSegment(&b); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s: decoding an empty segment: err %v, want ErrCorrupt", name, err)
			}
		}
	}
}

// FuzzDecodeSegment: whatever bytes a bucket returns, decoding errs or gives revisions that
// encode back to a segment decoding to the same revisions.
func FuzzDecodeSegment(f *testing.F) {
	revs := sampleRevisions()
	f.Add(encode(f, revs))
	f.Add(encode(f, revs[:1]))
	f.Add([]byte(segmentMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeSegment(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error %v is neither ErrCorrupt nor ErrVersion", err)
			}
			return
		}
		again, err := DecodeSegment(bytes.NewReader(encode(t, got)))
		if err != nil {
			t.Fatalf("re-encoded segment: %v", err)
		}
		sameRevisions(t, again, got)
	})
}
