package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// capabilityRow is a row of the fault matrix that migrate or the scheduled
// backups own: a test of its own (several minutes of real members for
// migrate), so the matrix names it instead of running it a second time.
type capabilityRow struct {
	name  string
	test  string // the test function, in pkg
	pkg   string // its directory, relative to the repository
	op    string
	fault string
	holds string
}

var capabilityFaults = []capabilityRow{
	{"migrate-killed", "TestMigrateResumesAfterKill", "cmd/etcdops",
		"`migrate run` a,b,c → A,B,C (`serve` members) under 500 writes/s",
		"SIGKILL at every step boundary and in the middle of each wait for a new member, then rerun",
		"the reruns finish the migration; no failed write (but etcd's during a leadership move) and none lost; quorum at every 100 ms sample; members exactly A,B,C with equal `hashkv`"},
	{"migrate-member-never-starts", "TestMigrateMemberThatNeverStarts", "cmd/etcdops",
		"`migrate run` adding A under 500 writes/s",
		"A never starts; and `migrate run` killed while it waits for A",
		"exit 1 naming A; the learner removed again, members as before; the wait for A logged; `migrate abort` removes the learner a killed run left"},
	{"migrate-member-dies-before-catch-up", "TestMigrateMemberThatNeverStarts", "cmd/etcdops",
		"`migrate run` adding A under 500 writes/s, then the same command again",
		"A joins, writes its WAL and is killed (SIGKILL) before it catches up",
		"exit 1, A removed again, the error names its data dir; the rerun moves that dir aside (`<dir>.old-<UTC time>`) and A joins; no write failed or lost"},
	{"migrate-leader-removed", "TestMigrateMovesLeadershipBeforeRemovingTheLeader", "cmd/etcdops",
		"`migrate run` replacing the leader under 500 writes/s",
		"the member to remove leads",
		"leadership moves to the new voter before the removal; no failed write but those etcd drops while leadership moves; none lost"},
	{"serve-backup-leader-killed", "TestServeBackupCronOneSnapshotPerSlot", "cmd/etcdops",
		"three `serve --backup-cron @every 1s` members, more than ten slots",
		"SIGKILL of the leader in the middle",
		"one snapshot per slot, by the member that claimed it; none overwritten; at most the slot in flight during the kill missing"},
	{"schedule-sigterm-mid-upload", "TestScheduleSIGTERMAbortsUpload", "cmd/etcdops",
		"`schedule` uploading to a slow bucket",
		"SIGTERM mid-upload",
		"exit 0 within seconds; nothing of the snapshot visible"},
	{"schedule-dead-endpoint", "TestFailedRunIsCountedAndNeverPrunes", "schedule",
		"a scheduled job",
		"its etcd endpoint is dead",
		"the run counts as failed in the metrics; retention never runs after it"},
	{"schedule-overlap", "TestOverlappingRunIsSkipped", "schedule",
		"a scheduled job every second",
		"a bucket slower than the schedule",
		"runs never overlap; each skipped run counted and logged"},
	{"schedule-panic", "TestPanickingRunKeepsTheSchedule", "schedule",
		"a scheduled job",
		"the run panics",
		"the schedule goes on with the next runs (robfig/cron#366 fixed)"},
	{"schedule-restart", "TestCatchUpAfterRestart", "schedule",
		"`schedule` restarted after missing slots",
		"the newest snapshot in the bucket is older than one interval",
		"exactly one catch-up run (none with `--catch-up none`)"},
	{"slot-lost-to-another-member", "TestMemberThatLosesEverySlotExportsTheClusterSeries", "schedule",
		"two schedulers of one tag and bucket, one whose claims never win",
		"every slot taken by the other",
		"the losing one runs no backup and exports as its last success the snapshot the other saved; the promtool test of `EtcdBackupMissing` with three members' series alerts once per cluster, never on a member for a slot another took"},
	{"slot-claim-no-quorum", "TestClaimExactlyOnePerSlotAndNoneWithoutQuorum", "schedule",
		"slot claims of three members",
		"all claim the same slot; a member stops as it revokes the lease of a claim it lost; a member without quorum claims",
		"exactly one claim wins per slot; the losing claim returns (its revoke is bounded, shutdown never waits on it); none without quorum"},
	{"pitr-streamer-killed", "TestPITRStockEtcd36", "cmd/etcdops",
		"`schedule --pitr` of a 3-member stock etcd 3.6.16 cluster to MinIO (zstd, age) under 1,000 writes/s of puts, deletes, multi-key transactions and keys on leases that expire, compacted every 2 s to a revision already logged",
		"SIGKILL while a segment upload is in flight, then started again",
		"the log contiguous from a snapshot, no gap, a revision in two segments identical; `backup verify --pitr` passes; `restore` to 5 random revisions (one read while no streamer ran, one before the kill, both compacted in the source since), to a time and to latest equals the source at that revision, key by key (value, create and mod revision, version, lease)"},
	{"pitr-source-etcd-3.5", "TestPITRStockEtcd35", "cmd/etcdops",
		"`schedule --config` with two `pitr: true` jobs of a stock etcd 3.5.35 member, to fake-gcs-server and to Azurite (zstd, age), under 1,000 writes/s of the same mix",
		"compacted every 2 s to the lower end of the two logs",
		"both logs contiguous, `backup verify --pitr` passes; `restore` from each to a random revision, and from Azurite to latest, equals the source key by key"},
	{"pitr-serve-streamer-killed", "TestServeBackupPITRTakeover", "cmd/etcdops",
		"three `serve --backup-pitr` members logging to MinIO",
		"SIGKILL of the elected streamer",
		"another member is elected and streams; the log contiguous from a snapshot through the writes after the kill, a revision in two segments identical"},
}

// TestCapabilityFaultsAreTests checks that every capability row names a
// test function that exists where the row says.
func TestCapabilityFaultsAreTests(t *testing.T) {
	funcs := map[string]bool{}
	for _, pkg := range []string{"cmd/etcdops", "schedule"} {
		files, err := filepath.Glob(filepath.Join("../..", pkg, "*_test.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			file, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range file.Decls {
				if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Test") {
					funcs[pkg+"."+fn.Name.Name] = true
				}
			}
		}
	}
	for _, r := range capabilityFaults {
		if !funcs[r.pkg+"."+r.test] {
			t.Errorf("row %s: no test %s in %s", r.name, r.test, r.pkg)
		}
	}
}
