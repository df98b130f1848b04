package server

import (
	"errors"
	"sort"

	cconfig "go.etcd.io/etcd/server/v3/config"
	"go.etcd.io/etcd/server/v3/embed"
)

// experimentalRenames copies the value of each etcd 3.6 deprecated
// --experimental-* setting onto the setting that replaced it, as etcd's own
// main does. It applies to flags, ETCD_* variables and config file keys alike.
var experimentalRenames = map[string]func(c *embed.Config){
	"experimental-compact-hash-check-time":   func(c *embed.Config) { c.CompactHashCheckTime = c.ExperimentalCompactHashCheckTime },
	"experimental-corrupt-check-time":        func(c *embed.Config) { c.CorruptCheckTime = c.ExperimentalCorruptCheckTime },
	"experimental-compaction-batch-limit":    func(c *embed.Config) { c.CompactionBatchLimit = c.ExperimentalCompactionBatchLimit },
	"experimental-warning-apply-duration":    func(c *embed.Config) { c.WarningApplyDuration = c.ExperimentalWarningApplyDuration },
	"experimental-memory-mlock":              func(c *embed.Config) { c.MemoryMlock = c.ExperimentalMemoryMlock },
	"experimental-snapshot-catchup-entries":  func(c *embed.Config) { c.SnapshotCatchUpEntries = c.ExperimentalSnapshotCatchUpEntries },
	"experimental-compaction-sleep-interval": func(c *embed.Config) { c.CompactionSleepInterval = c.ExperimentalCompactionSleepInterval },
	"experimental-downgrade-check-time":      func(c *embed.Config) { c.DowngradeCheckTime = c.ExperimentalDowngradeCheckTime },
	"experimental-watch-progress-notify-interval": func(c *embed.Config) {
		c.WatchProgressNotifyInterval = c.ExperimentalWatchProgressNotifyInterval
	},
	"experimental-bootstrap-defrag-threshold-megabytes": func(c *embed.Config) {
		c.BootstrapDefragThresholdMegabytes = c.ExperimentalBootstrapDefragThresholdMegabytes
	},
	"experimental-peer-skip-client-san-verification": func(c *embed.Config) {
		c.PeerTLSInfo.SkipClientSANVerify = c.ExperimentalPeerSkipClientSanVerification
	},
	"experimental-enable-distributed-tracing": func(c *embed.Config) {
		c.EnableDistributedTracing = c.ExperimentalEnableDistributedTracing
	},
	"experimental-distributed-tracing-address": func(c *embed.Config) {
		c.DistributedTracingAddress = c.ExperimentalDistributedTracingAddress
	},
	"experimental-distributed-tracing-service-name": func(c *embed.Config) {
		c.DistributedTracingServiceName = c.ExperimentalDistributedTracingServiceName
	},
	"experimental-distributed-tracing-instance-id": func(c *embed.Config) {
		c.DistributedTracingServiceInstanceID = c.ExperimentalDistributedTracingServiceInstanceID
	},
	"experimental-distributed-tracing-sampling-rate": func(c *embed.Config) {
		c.DistributedTracingSamplingRatePerMillion = c.ExperimentalDistributedTracingSamplingRatePerMillion
	},
}

// deprecationWarnings are the messages etcd 3.6 logs, word for word, when a
// deprecated setting is given.
var deprecationWarnings = map[string]string{
	"max-snapshots":  "--max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8.",
	"v2-deprecation": "--v2-deprecation is deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input.",
	"experimental-compact-hash-check-enabled":           "--experimental-compact-hash-check-enabled is deprecated in 3.6 and will be decommissioned in 3.7. Use '--feature-gates=CompactHashCheck=true' instead.",
	"experimental-compact-hash-check-time":              "--experimental-compact-hash-check-time is deprecated in 3.6 and will be decommissioned in 3.7. Use '--compact-hash-check-time' instead.",
	"experimental-txn-mode-write-with-shared-buffer":    "--experimental-txn-mode-write-with-shared-buffer is deprecated in v3.6 and will be decommissioned in v3.7. Use '--feature-gates=TxnModeWriteWithSharedBuffer=true' instead.",
	"experimental-corrupt-check-time":                   "--experimental-corrupt-check-time is deprecated in v3.6 and will be decommissioned in v3.7. Use '--corrupt-check-time' instead.",
	"experimental-compaction-batch-limit":               "--experimental-compaction-batch-limit is deprecated in v3.6 and will be decommissioned in v3.7. Use '--compaction-batch-limit' instead.",
	"experimental-watch-progress-notify-interval":       "--experimental-watch-progress-notify-interval is deprecated in v3.6 and will be decommissioned in v3.7. Use '--watch-progress-notify-interval' instead.",
	"experimental-warning-apply-duration":               "--experimental-warning-apply-duration is deprecated in v3.6 and will be decommissioned in v3.7. Use '--warning-apply-duration' instead.",
	"experimental-bootstrap-defrag-threshold-megabytes": "--experimental-bootstrap-defrag-threshold-megabytes is deprecated in v3.6 and will be decommissioned in v3.7. Use '--bootstrap-defrag-threshold-megabytes' instead.",
	"experimental-memory-mlock":                         "--experimental-memory-mlock is deprecated in v3.6 and will be decommissioned in v3.7. Use '--memory-mlock' instead.",
	"experimental-snapshot-catchup-entries":             "--experimental-snapshot-catchup-entries is deprecated in v3.6 and will be decommissioned in v3.7. Use '--snapshot-catchup-entries' instead.",
	"experimental-compaction-sleep-interval":            "--experimental-compaction-sleep-interval is deprecated in v3.6 and will be decommissioned in v3.7. Use 'compaction-sleep-interval' instead.",
	"experimental-downgrade-check-time":                 "--experimental-downgrade-check-time is deprecated in v3.6 and will be decommissioned in v3.7. Use '--downgrade-check-time' instead.",
	"experimental-enable-distributed-tracing":           "--experimental-enable-distributed-tracing is deprecated in 3.6 and will be decommissioned in 3.7. Use --enable-distributed-tracing instead.",
	"experimental-distributed-tracing-address":          "--experimental-distributed-tracing-address is deprecated in 3.6 and will be decommissioned in 3.7. Use --distributed-tracing-address instead.",
	"experimental-distributed-tracing-service-name":     "--experimental-distributed-tracing-service-name is deprecated in 3.6 and will be decommissioned in 3.7. Use --distributed-tracing-service-name instead.",
	"experimental-distributed-tracing-instance-id":      "--experimental-distributed-tracing-instance-id is deprecated in 3.6 and will be decommissioned in 3.7. Use --distributed-tracing-instance-id instead.",
	"experimental-distributed-tracing-sampling-rate":    "--experimental-distributed-tracing-sampling-rate is deprecated in 3.6 and will be decommissioned in 3.7. Use --distributed-tracing-sampling-rate instead.",
}

const unaryDurationWarning = "--experimental-warning-unary-request-duration is deprecated, and will be decommissioned in v3.7. " +
	"Use --warning-unary-request-duration instead."

// applyDeprecated maps deprecated settings onto their replacements and
// returns the warnings etcd prints for them, sorted.
func applyDeprecated(c *embed.Config) ([]string, error) {
	for name, apply := range experimentalRenames {
		if c.FlagsExplicitlySet[name] {
			apply(c)
		}
	}
	// --v2-deprecation is fixed in 3.6: only the skip-check stage is honoured.
	if c.V2Deprecation != cconfig.V2Depr1WriteOnlySkipCheck {
		c.V2Deprecation = cconfig.V2DeprDefault
	}

	var warnings []string
	switch {
	case c.ExperimentalWarningUnaryRequestDuration != 0 && c.WarningUnaryRequestDuration != 0:
		return nil, errors.New("both --experimental-warning-unary-request-duration and --warning-unary-request-duration flags are set. " +
			"Use only --warning-unary-request-duration")
	case c.WarningUnaryRequestDuration != 0:
	case c.ExperimentalWarningUnaryRequestDuration != 0:
		c.WarningUnaryRequestDuration = c.ExperimentalWarningUnaryRequestDuration
		warnings = append(warnings, unaryDurationWarning)
	default:
		c.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	}
	for name := range c.FlagsExplicitlySet {
		if msg, ok := deprecationWarnings[name]; ok {
			warnings = append(warnings, msg)
		}
	}
	sort.Strings(warnings)
	return warnings, nil
}
