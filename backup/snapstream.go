package backup

import (
	"context"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// snapshotStream reads a member's snapshot straight off its gRPC stream.
// clientv3's Snapshot allocates a fresh 32 KiB blob for every message and
// copies it through a pipe: a gigabyte of garbage per gigabyte of
// snapshot, which on a small machine costs more than the transfer. Here
// one message is decoded into the same buffers again and again, so the
// stream allocates nothing per message.
type snapshotStream struct {
	ctx     context.Context
	ss      pb.Maintenance_SnapshotClient
	msg     pb.SnapshotResponse
	rest    []byte // the unread part of msg.Blob
	version string // the member's storage version, from the first message
}

// openSnapshot starts the snapshot stream on cli's connection and reads its
// first message, which carries the storage version.
func openSnapshot(ctx context.Context, cli *clientv3.Client) (*snapshotStream, error) {
	ss, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Snapshot(ctx, &pb.SnapshotRequest{},
		grpc.ForceCodecV2(reuseCodec{encoding.GetCodecV2("proto")}))
	if err != nil {
		return nil, streamErr(ctx, err)
	}
	s := &snapshotStream{ctx: ctx, ss: ss}
	if err := s.next(); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	s.version = s.msg.Version
	return s, nil
}

// next receives the next message; io.EOF when the member has sent all.
func (s *snapshotStream) next() error {
	if err := s.ss.RecvMsg(&s.msg); err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return streamErr(s.ctx, err)
	}
	s.rest = s.msg.Blob
	return nil
}

// streamErr says that ctx ended the stream where it did, as clientv3 does.
func streamErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return rpctypes.Error(err)
}

func (s *snapshotStream) Read(p []byte) (int, error) {
	for len(s.rest) == 0 {
		if err := s.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.rest)
	s.rest = s.rest[n:]
	return n, nil
}

// reuseCodec decodes snapshot messages into the message given, keeping its
// blob's buffer (the gogo-generated Unmarshal appends to Blob[:0] and does
// not reset the message first, which the proto codec would); every other
// message goes to the proto codec.
type reuseCodec struct {
	encoding.CodecV2
}

func (c reuseCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*pb.SnapshotResponse)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(dirtyPool)
	defer buf.Free()
	// Fields absent from this message must not keep the last one's values.
	*m = pb.SnapshotResponse{Blob: m.Blob[:0]}
	if err := m.Unmarshal(buf.ReadOnlyData()); err != nil {
		return fmt.Errorf("snapshot message: %w", err)
	}
	return nil
}

// StreamDialOptions are the gRPC options for clients that take snapshots.
// Fixed 1 MiB flow-control windows (rather than gRPC's adaptive ones, which
// grow to 16 MiB) bound what a snapshot stream buffers; on loopback and LANs
// they cost no throughput. gRPC's default buffer pool zeroes every buffer it
// hands out, although each one is filled from the network right away; for
// a snapshot that is a second pass over every byte, so these clients get a
// pool that does not.
func StreamDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(1 << 20), grpc.WithInitialConnWindowSize(1 << 20),
		experimental.WithBufferPool(dirtyPool),
	}
}

// dirtyPool keeps buffers of the sizes gRPC asks for while receiving (HTTP/2
// frames of up to 16 KiB, messages of etcd's 32 KiB snapshot chunks) without
// clearing them; other sizes are allocated.
var dirtyPool = &sizedPools{sizes: []int{4 << 10, 16 << 10, 32 << 10, 64 << 10}}

type sizedPools struct {
	sizes []int
	pools [4]sync.Pool
}

func (p *sizedPools) Get(n int) *[]byte {
	for i, size := range p.sizes {
		if n <= size {
			if b, ok := p.pools[i].Get().(*[]byte); ok {
				*b = (*b)[:n]
				return b
			}
			b := make([]byte, n, size)
			return &b
		}
	}
	b := make([]byte, n)
	return &b
}

func (p *sizedPools) Put(b *[]byte) {
	for i := len(p.sizes) - 1; i >= 0; i-- {
		if cap(*b) >= p.sizes[i] {
			p.pools[i].Put(b)
			return
		}
	}
}
