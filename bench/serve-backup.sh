#!/usr/bin/env bash
# Benchmarks what scheduled backups cost the member they run in: one
# `etcdops serve` member (real fsync) with a database of BENCH_DB_MIB, put
# throughput and p99 with etcd's stock `benchmark put` while the member
# itself takes a snapshot every 2 s into a file:// bucket
# (--backup-cron "@every 2s", --backup-keep-last 2), against the same member
# without --backup-cron; and the member's peak RSS (VmHWM) in each case.
# Rounds alternate the order. Prints a markdown table of the medians.
#
#   bench/serve-backup.sh                          # 128 MiB, 3 rounds
#   BENCH_DB_MIB=32 BENCH_ROUNDS=1 bench/serve-backup.sh   # quick
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
db_mib=${BENCH_DB_MIB:-128}
rounds=${BENCH_ROUNDS:-3}
total=${BENCH_TOTAL:-20000}
tools=$(scripts/tools.sh | tail -n 1)
work=$(mktemp -d /var/tmp/etcdops-bench-sb.XXXXXX)
srv=
cleanup() { [ -z "$srv" ] || kill "$srv" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
go build -trimpath -o "$work/etcdops" ./cmd/etcdops
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# runs EP: the member's successful scheduled backups so far.
runs() {
	curl -sf "$1/metrics" | awk '/^etcdops_schedule_runs_total\{backup_job="backup",result="success"\}/ {n = $2} END {print n + 0}'
}

# run_one MODE: fills a fresh member, then measures; prints "req/s p99_s
# hwm_kib snapshots", the snapshots being those taken during the measurement.
run_one() {
	local mode=$1 cport pport ep
	cport=$(freeport) pport=$(freeport)
	ep=http://127.0.0.1:$cport
	rm -rf "$work/data" "$work/bucket" && mkdir -p "$work/bucket"
	local -a extra=()
	[ "$mode" = backups ] && extra=(--backup-cron "@every 2s" --backup-to "file://$work/bucket" --backup-keep-last 2)
	"$work/etcdops" serve --name b --data-dir "$work/data" --listen-client-urls "$ep" --advertise-client-urls "$ep" \
		--listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
		--initial-cluster "b=http://127.0.0.1:$pport" --quota-backend-bytes 8589934592 --log-level warn \
		"${extra[@]}" >"$work/server.log" 2>&1 &
	srv=$!
	until curl -sf "$ep/health" >/dev/null; do sleep 0.2; done
	# Fill with 10 KiB values; backups (if any) already run meanwhile.
	"$tools/benchmark" --endpoints="$ep" --conns=8 --clients=8 put --key-size=16 --val-size=10240 \
		--total=$((db_mib * 100)) --sequential-keys >/dev/null 2>&1
	local rps p99 hwm snaps s0
	s0=$(runs "$ep")
	"$tools/benchmark" --endpoints="$ep" --conns=16 --clients=16 put --key-size=8 --val-size=256 --total="$total" \
		--sequential-keys=false >"$work/bench.out" 2>&1
	rps=$(awk '/Requests\/sec:/ {print $2; exit}' "$work/bench.out")
	p99=$(awk '$1 == "99%" && $2 == "in" {print $3; exit}' "$work/bench.out")
	hwm=$(awk '/VmHWM/ {print $2}' "/proc/$srv/status")
	snaps=$(($(runs "$ep") - s0))
	kill "$srv"; wait "$srv" 2>/dev/null || true; srv=
	echo "$rps $p99 $hwm $snaps"
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
declare -A rps=() p99=() hwm=() snaps=()
for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then order="idle backups"; else order="backups idle"; fi
	for m in $order; do
		read -r a b c d < <(run_one "$m")
		echo "round $r $m: $a req/s, p99 $b s, VmHWM $c KiB, $d snapshots" >&2
		rps[$m]="${rps[$m]:-} $a" p99[$m]="${p99[$m]:-} $b" hwm[$m]="${hwm[$m]:-} $c" snaps[$m]="${snaps[$m]:-} $d"
	done
done
echo "| member (${db_mib} MiB db, $total puts of 256 B, 16 clients) | req/s | p99 ms | peak RSS MiB | snapshots during the puts |"
echo "|---|---|---|---|---|"
for m in idle backups; do
	# shellcheck disable=SC2086
	awk -v m="$m" -v r="$(median ${rps[$m]})" -v p="$(median ${p99[$m]})" -v h="$(median ${hwm[$m]})" -v s="$(median ${snaps[$m]})" \
		'BEGIN {printf "| %s | %.0f | %.1f | %.0f | %s |\n", m, r, p * 1000, h / 1024, s}'
done
