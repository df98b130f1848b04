#!/usr/bin/env bash
# Benchmarks `etcdops migrate run` against the same moves made with stock
# etcdctl (etcd 3.6.16), in one run: a 3-member stock etcd cluster with real
# fsync, restored from a snapshot of about BENCH_DB_MB MiB, under 500
# writes/s through a client with AutoSyncInterval, is migrated onto three
# `etcdops serve` members twice: once by `etcdops migrate run` (one member at
# a time, the leader last after moving leadership), once by a stock script
# (for each old member: `etcdctl member add --learner`, start the new member,
# `etcdctl member promote` polled until etcd accepts it, `etcdctl member
# remove`, in the same order). Both start from the same snapshot.
#
# Prints a markdown table: total time and the ratio (goal ≤ 1.2×), failed
# writes, lost writes (acknowledged but not read back afterwards), and each
# learner's catch-up time (added → promoted) and MiB/s against a plain copy
# of the database over a loopback TCP connection with fsync.
# The code is BenchmarkMigrate in cmd/etcdops/migrate_bench_test.go.
#
# Usage: bench/migrate.sh                  (1 GiB)
#        BENCH_DB_MB=100 bench/migrate.sh  (quick)
#
# Environment:
#   ETCDOPS_BIN  etcdops binary to test (default: built from this tree)
#   BENCH_DB_MB  database size to aim at, in MiB (default 1024; at most
#                about 1500: the new members run with etcd's 2 GiB quota)
#   TMPDIR       where everything goes (a real disk, not tmpfs); needs about
#                8 × BENCH_DB_MB free
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

size_mib=${BENCH_DB_MB:-1024}
dir=${TMPDIR:-/tmp}
. bench/lib.sh

need_disk "$dir" $((size_mib * 8 + 500))

command_line=$(pasteable bench/migrate.sh ETCDOPS_BIN BENCH_DB_MB)

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
test_bin=$(mktemp "$dir/migrate-bench.XXXXXX")
trap 'rm -f "$test_bin"' EXIT
go test -c -o "$test_bin" ./cmd/etcdops/
(cd cmd/etcdops && "$test_bin" -test.count=1 -test.timeout=90m -test.run='^$' -test.bench='^BenchmarkMigrate$' -test.benchtime=1x) |
	grep -v -e '^goos:' -e '^goarch:' -e '^pkg:' -e '^cpu:' -e '^BenchmarkMigrate' -e '^PASS'
echo
echo "command: $command_line ($(date -u +%Y-%m-%d))"
