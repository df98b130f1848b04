package etcdclient

import (
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// IsRPCError reports whether err is etcd's error target (one of rpctypes'
// ErrGRPC*), as the client returns it: the error itself or one with its
// description, which is what arrives over gRPC.
func IsRPCError(err, target error) bool {
	return err != nil && (errors.Is(err, target) || rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(target))
}
