package backup

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The codec reuses one message: what a message leaves out must not keep
// the previous message's value, and the blob's buffer is kept.
func TestReuseCodecClearsAbsentFields(t *testing.T) {
	c := reuseCodec{encoding.GetCodecV2("proto")}
	wire := func(m *pb.SnapshotResponse) mem.BufferSlice {
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		// Split in two, as messages arrive over several HTTP/2 frames.
		return mem.BufferSlice{mem.SliceBuffer(b[:len(b)/2]), mem.SliceBuffer(b[len(b)/2:])}
	}
	var m pb.SnapshotResponse
	first := bytes.Repeat([]byte("a"), 1000)
	if err := c.Unmarshal(wire(&pb.SnapshotResponse{RemainingBytes: 7, Blob: first, Version: "3.6.0"}), &m); err != nil {
		t.Fatal(err)
	}
	if m.RemainingBytes != 7 || !bytes.Equal(m.Blob, first) || m.Version != "3.6.0" {
		t.Fatalf("first message decoded as %d, %d bytes, %q", m.RemainingBytes, len(m.Blob), m.Version)
	}
	buf := &m.Blob[:1][0]
	if err := c.Unmarshal(wire(&pb.SnapshotResponse{Blob: []byte("bc")}), &m); err != nil {
		t.Fatal(err)
	}
	if m.RemainingBytes != 0 || string(m.Blob) != "bc" || m.Version != "" {
		t.Fatalf("second message decoded as %d, %q, %q", m.RemainingBytes, m.Blob, m.Version)
	}
	if &m.Blob[0] != buf {
		t.Error("the blob's buffer was not reused")
	}
	if err := c.Unmarshal(wire(&pb.SnapshotResponse{RemainingBytes: 1}), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Blob) != 0 {
		t.Fatalf("a message without a blob kept %q", m.Blob)
	}
}

func TestSizedPools(t *testing.T) {
	for _, n := range []int{1, 4 << 10, 5000, 16 << 10, 32 << 10, 64 << 10, 1 << 20} {
		b := dirtyPool.Get(n)
		if len(*b) != n {
			t.Fatalf("Get(%d) returned %d bytes", n, len(*b))
		}
		dirtyPool.Put(b)
		if b := dirtyPool.Get(n); len(*b) != n {
			t.Fatalf("Get(%d) after Put returned %d bytes", n, len(*b))
		}
	}
}
