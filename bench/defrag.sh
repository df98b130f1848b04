#!/usr/bin/env bash
# Benchmarks `etcdops defrag` against the loop operators write today with
# stock etcdctl (etcd 3.6.16), in one run: a 3-member `etcdops serve` cluster
# with real fsync, restored from a snapshot of about BENCH_DB_MB MiB of which
# ~60% is free (filled, 3 of every 5 blocks of keys deleted, compacted),
# under 500 writes/s through etcd's client (AutoSyncInterval 500ms, 5s per
# put), is defragmented by `etcdops defrag` and by `etcdctl defrag
# --endpoints=<member>` of each member in turn then `etcdctl alarm disarm`,
# each from a fresh restore; then the same writer runs on a cluster left
# alone, as long as the longest way took, as the baseline. With BENCH_GATE=both
# (the default) both ways run again on members with the
# StopGRPCServiceOnDefrag feature gate and a writer whose client uses gRPC
# health checking (see README, "Clients during a defragmentation").
#
# Prints a markdown table per way: total time, each member's own defrag
# time, failed writes (and those etcd dropped at the leadership move), leader
# elections (raft term rises), put latency p50/p99/max and writes/s; then the
# goals' ratios: etcdops' total against the sum of the members' own defrag
# times in the stock loop (≤ 1.2×), its put p99 against the stock loop's
# (≤ 0.5×). The code is BenchmarkDefrag in cmd/etcdops/defrag_bench_test.go.
#
# Usage: bench/defrag.sh                   (256 MiB, a few minutes)
#        BENCH_DB_MB=1024 bench/defrag.sh  (the issue's 1 GiB)
#
# Environment:
#   ETCDOPS_BIN  etcdops binary to test (default: built from this tree)
#   BENCH_DB_MB  database size to aim at, in MiB (default 256; at most
#                about 1800: the members run with etcd's 2 GiB quota)
#   BENCH_GATE   off, on or both (default): StopGRPCServiceOnDefrag and a
#                health-checking client off, on, or one run of each way each
#   TMPDIR       where everything goes (a real disk, not tmpfs); needs about
#                5 × BENCH_DB_MB free
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

size_mib=${BENCH_DB_MB:-256}
dir=${TMPDIR:-/tmp}
. bench/lib.sh

need_disk "$dir" $((size_mib * 5 + 500))

command_line=$(pasteable bench/defrag.sh ETCDOPS_BIN BENCH_DB_MB BENCH_GATE)

ETCDOPS_TOOLS=$(scripts/tools.sh | tail -n 1)
export ETCDOPS_TOOLS
if [ -z "${ETCDOPS_BIN:-}" ]; then
	mkdir -p .cache/bin
	go build -o .cache/bin/etcdops ./cmd/etcdops
	ETCDOPS_BIN=$root/.cache/bin/etcdops
fi
export ETCDOPS_BIN BENCH_DB_MB=$size_mib BENCH_DIR=$dir
say "$command_line: $(nproc) cores, $(df -PT "$dir" | awk 'NR==2 {print $2}') at $dir"
# A compiled test binary, run in the package dir, streams its progress.
test_bin=$(mktemp "$dir/defrag-bench.XXXXXX")
trap 'rm -f "$test_bin"' EXIT
go test -c -o "$test_bin" ./cmd/etcdops/
(cd cmd/etcdops && "$test_bin" -test.count=1 -test.timeout=90m -test.run='^$' -test.bench='^BenchmarkDefrag$' -test.benchtime=1x) |
	grep -v -e '^goos:' -e '^goarch:' -e '^pkg:' -e '^cpu:' -e '^BenchmarkDefrag' -e '^PASS'
echo
echo "command: $command_line ($(date -u +%Y-%m-%d))"
