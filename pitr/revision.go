package pitr

import (
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Revision is one revision of a cluster's log: every event of the one
// write transaction that made it, as the watch delivered them, in order.
type Revision struct {
	// Rev is the cluster revision the transaction created.
	Rev int64
	// Received is when the streamer received it (the clock of --to-time).
	Received time.Time
	// Events are the puts and deletes of the revision (each with key,
	// value, create and mod revision, version and lease ID).
	Events []*mvccpb.Event
	// Leases are the leases that the log sees for the first time at this
	// revision, with the TTL they were granted, so that a restore can
	// recreate them with their IDs.
	Leases []Lease
}

// Lease is a lease as the log records it.
type Lease struct {
	ID  int64
	TTL int64 // seconds, as granted
}
