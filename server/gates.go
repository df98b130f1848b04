package server

import (
	"strings"

	"go.etcd.io/etcd/pkg/v3/featuregate"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/features"
)

// defaultGates are the server feature gates etcdops serve turns on where
// etcd leaves them off, unless the configuration sets them (--feature-gates,
// the matching --experimental-* flag, or their config file keys).
//
// StopGRPCServiceOnDefrag makes a member's gRPC health service report
// NOT_SERVING while it defragments, so that clients with gRPC health
// checking send their requests to the other members meanwhile; clients
// without it see no difference (README: "Clients during a defragmentation").
var defaultGates = []featuregate.Feature{features.StopGRPCServiceOnDefrag}

// applyDefaultGates turns on the defaultGates that c does not set.
func applyDefaultGates(c *embed.Config) error {
	set := map[string]bool{}
	for _, kv := range strings.Split(c.ServerFeatureGate.(featuregate.MutableFeatureGate).String(), ",") {
		name, _, _ := strings.Cut(kv, "=")
		set[name] = true
	}
	m := map[string]bool{}
	for _, g := range defaultGates {
		if !set[string(g)] && !set["AllAlpha"] && !set["AllBeta"] {
			m[string(g)] = true
		}
	}
	if len(m) == 0 {
		return nil
	}
	return c.ServerFeatureGate.(featuregate.MutableFeatureGate).SetFromMap(m)
}
