#!/usr/bin/env bash
# Benchmarks `etcdops restore` of a 3-member cluster against stock
# `etcdutl snapshot restore` (etcd 3.6.16) of the same snapshot, in one run:
# ONE stock restore (one member), three stock restores (one per member, as
# operators do it by hand) and one `etcdops restore` of all three members.
# Prints a markdown table of the medians and the ratios.
#
# The snapshot is made once: a stock etcd member (filled without fsync,
# which the fill does not need) is filled with etcd's `benchmark put` to
# about BENCH_SIZE_MIB, and saved with stock `etcdctl snapshot save`. Every
# restore does real fsync. Runs are interleaved (the order alternates
# between rounds) and each writes fresh data dirs, removed after it; one
# untimed round of each first warms the page cache for all of them.
#
# With BENCH_MODE=one it compares what each host runs instead: one
# `etcdops restore --name a` against one stock restore of member a, and
# reports the medians of wall time, CPU time (user + system) and peak RSS of
# each, as /usr/bin/time measures them.
#
# Usage: bench/restore.sh                      (1 GiB snapshot, 5 rounds)
#        BENCH_SIZE_MIB=100 BENCH_ROUNDS=1 bench/restore.sh   (quick)
#        BENCH_XFS=1 bench/restore.sh          (on a loop-mounted XFS with reflink; root, mkfs.xfs)
#        BENCH_MODE=one BENCH_SIZE_MIB=512 BENCH_ROUNDS=4 bench/restore.sh   (one member, --name a)
#
# Environment:
#   ETCDOPS_BIN     etcdops binary to test (default: built from this tree)
#   BENCH_SIZE_MIB  snapshot size to aim at (default 1024)
#   BENCH_ROUNDS    timed rounds (default 5)
#   BENCH_XFS       1: run the restores on a fresh XFS (reflink=1) loop mount
#   BENCH_MODE      three (default): all members; one: member a, as on each host
#   BENCH_SNAPSHOT  restore this snapshot instead of making one (it is copied)
#   TMPDIR          where everything goes (a real disk, not tmpfs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

size_mib=${BENCH_SIZE_MIB:-1024}
rounds=${BENCH_ROUNDS:-5}
xfs=${BENCH_XFS:-0}
mode=${BENCH_MODE:-three}
case $mode in
one | three) ;;
*) echo "bench: BENCH_MODE=$mode: expected one or three" >&2 && exit 2 ;;
esac

. bench/lib.sh

command_line=$(pasteable bench/restore.sh ETCDOPS_BIN BENCH_MODE BENCH_SNAPSHOT BENCH_SIZE_MIB BENCH_ROUNDS BENCH_XFS)

work=$(mktemp -d "${TMPDIR:-/tmp}/etcdops-bench-restore.XXXXXX")
etcd_pid=
mounted=
cleanup() {
	if [ -n "$etcd_pid" ]; then
		kill "$etcd_pid" 2>/dev/null || true
		wait "$etcd_pid" 2>/dev/null || true
	fi
	if [ -n "$mounted" ]; then umount "$mounted" || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need_disk "$work" $((size_mib * 7 + 200)) # fill data dir, snapshot, 4 member databases, WALs

tools=$(scripts/tools.sh | tail -n 1)
bin=${ETCDOPS_BIN:-}
if [ -z "$bin" ]; then
	go build -o "$work/etcdops" ./cmd/etcdops
	bin=$work/etcdops
fi

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# The snapshot: ~size_mib of 3900-byte values, one bolt page each.
if [ -n "${BENCH_SNAPSHOT:-}" ]; then
	cp "$BENCH_SNAPSHOT" "$work/snap.db"
else
	cport=$(freeport)
	pport=$(freeport)
	"$tools/etcd" --name fill --data-dir "$work/fill.etcd" --log-level warn --unsafe-no-fsync \
		--quota-backend-bytes=$((16 * 1024 * 1024 * 1024)) \
		--listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
		--listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
		--initial-cluster "fill=http://127.0.0.1:$pport" >"$work/etcd.log" 2>&1 &
	etcd_pid=$!
	for _ in $(seq 300); do
		curl -sf "http://127.0.0.1:$cport/health" >/dev/null && break
		kill -0 "$etcd_pid" 2>/dev/null || die "etcd exited: $(tail -n 5 "$work/etcd.log")"
		sleep 0.1
	done
	keys=$((size_mib * 256))
	say "filling etcd with $keys keys of 3900 bytes"
	"$tools/benchmark" put --endpoints "127.0.0.1:$cport" --clients 32 --conns 4 --key-size 16 --val-size 3900 \
		--total "$keys" --key-space-size "$keys" --sequential-keys >"$work/fill.log" 2>&1
	"$tools/etcdctl" --endpoints "127.0.0.1:$cport" snapshot save "$work/snap.db" >/dev/null 2>&1
	kill "$etcd_pid"
	wait "$etcd_pid" 2>/dev/null || true
	etcd_pid=
	rm -rf "$work/fill.etcd"
fi

dir=$work
fs=$(df -PT "$work" | awk 'NR==2 {print $2}')
if [ "$xfs" = 1 ]; then
	command -v mkfs.xfs >/dev/null || die "BENCH_XFS=1 needs mkfs.xfs (apt-get install xfsprogs)"
	truncate -s $(((size_mib * 6 + 1024) * 1024 * 1024)) "$work/xfs.img"
	mkfs.xfs -q -m reflink=1 "$work/xfs.img"
	mkdir "$work/xfs"
	mount -o loop "$work/xfs.img" "$work/xfs"
	mounted=$work/xfs
	dir=$work/xfs
	fs="xfs (loop, reflink)"
	mv "$work/snap.db" "$dir/snap.db"
fi
snap=$dir/snap.db
snap_bytes=$(stat -c %s "$snap")
say "snapshot: $((snap_bytes / 1024 / 1024)) MiB on $fs"

cluster="a=http://10.0.0.1:2380,b=http://10.0.0.2:2380,c=http://10.0.0.3:2380"
peer() { grep -o "$1=[^,]*" <<<"$cluster" | cut -d= -f2; }
now() { date +%s.%N; }

stock_one() {
	"$tools/etcdutl" snapshot restore "$snap" --data-dir "$dir/out/a" --name a --initial-cluster "$cluster" \
		--initial-advertise-peer-urls "$(peer a)" --initial-cluster-token bench >/dev/null 2>&1
}
stock_three() {
	for m in a b c; do
		"$tools/etcdutl" snapshot restore "$snap" --data-dir "$dir/out/$m" --name "$m" --initial-cluster "$cluster" \
			--initial-advertise-peer-urls "$(peer "$m")" --initial-cluster-token bench >/dev/null 2>&1
	done
}
etcdops_three() {
	"$bin" restore --from "$snap" --initial-cluster "$cluster" --initial-cluster-token bench \
		--data-dir-template "$dir/out/{name}" -q -w json >"$work/etcdops.json" 2>"$work/etcdops.log" ||
		die "etcdops restore failed: $(tail -n 3 "$work/etcdops.log")"
}
etcdops_one() {
	"$bin" restore --from "$snap" --initial-cluster "$cluster" --initial-cluster-token bench --name a \
		--data-dir-template "$dir/out/{name}" -q -w json >"$work/etcdops.json" 2>"$work/etcdops.log" ||
		die "etcdops restore failed: $(tail -n 3 "$work/etcdops.log")"
}
# measure NAME: runs NAME on a fresh out dir, appends its seconds to
# NAME.times; in mode one, its process's seconds, CPU seconds and peak RSS
# (KiB) to NAME.cpu and NAME.rss.
measure() {
	rm -rf "$dir/out"
	mkdir "$dir/out"
	sync
	local t0 t1
	if [ "$mode" = one ]; then
		# /usr/bin/time runs a command, not a function: give it what it needs.
		/usr/bin/time -f '%e %U %S %M' -o "$work/time.out" \
			bash -c "$(declare -p tools bin snap dir work cluster; declare -f "$1" peer die say); $1"
		read -r wall user sys rss <"$work/time.out"
		echo "$wall" >>"$work/$1.times"
		echo "$user + $sys" | bc >>"$work/$1.cpu"
		echo "$rss" >>"$work/$1.rss"
		say "$1: $wall s, CPU $user + $sys s, peak RSS $((rss / 1024)) MiB"
	else
		t0=$(now)
		"$1"
		t1=$(now)
		echo "$t1 - $t0" | bc >>"$work/$1.times"
		say "$1: $(tail -n 1 "$work/$1.times") s"
	fi
	rm -rf "$dir/out"
}

runs="stock_one etcdops_three stock_three"
if [ "$mode" = one ]; then runs="stock_one etcdops_one"; fi
say "warm-up round (not counted)"
for f in $runs; do
	rm -rf "$dir/out" && mkdir "$dir/out"
	"$f"
	rm -rf "$dir/out"
done
for r in $(seq "$rounds"); do
	order=$runs
	if [ $((r % 2)) = 0 ]; then order=$(tr ' ' '\n' <<<"$runs" | tac | paste -sd' ' -); fi
	for f in $order; do measure "$f"; done
done

median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
if [ "$mode" = one ]; then
	printf -v stamp '%s' "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
	echo
	echo "\`$command_line\` — $stamp"
	echo
	echo "| filesystem | snapshot | | wall | CPU | peak RSS |"
	echo "|---|---:|---|---:|---:|---:|"
	for f in stock_one etcdops_one; do
		printf "| %s | %d MiB | %s | %.2f s | %.2f s | %d MiB |\n" "$fs" $((snap_bytes / 1024 / 1024)) "$f" \
			"$(median "$work/$f.times")" "$(median "$work/$f.cpu")" $(($(median "$work/$f.rss" | cut -d. -f1) / 1024))
	done
	ratio() { echo "$(median "$work/etcdops_one.$1") / $(median "$work/stock_one.$1")" | bc -l; }
	printf "| | | etcdops / stock | **%.2f×** | %.2f× | %.2f× |\n" "$(ratio times)" "$(ratio cpu)" "$(ratio rss)"
	echo
	for f in stock_one etcdops_one; do
		echo "$f runs: wall (s) $(paste -sd' ' "$work/$f.times"); CPU (s) $(paste -sd' ' "$work/$f.cpu"); RSS (KiB) $(paste -sd' ' "$work/$f.rss")"
	done
	exit 0
fi
databases=$(grep -o '"database": "[a-z]*"' "$work/etcdops.json" | cut -d'"' -f4 | paste -sd, -)
one=$(median "$work/stock_one.times")
three=$(median "$work/stock_three.times")
ours=$(median "$work/etcdops_three.times")
echo
echo "\`$command_line\` — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
echo
echo "| filesystem | snapshot | stock, 1 member | stock, 3 members | etcdops, 3 members | etcdops / stock 1 | etcdops / stock 3 | member databases |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
printf "| %s | %d MiB | %.2f s | %.2f s | %.2f s | %.2f× | %.2f× | %s |\n" "$fs" $((snap_bytes / 1024 / 1024)) \
	"$one" "$three" "$ours" "$(echo "$ours / $one" | bc -l)" "$(echo "$ours / $three" | bc -l)" "$databases"
echo
echo "runs (s): stock 1: $(paste -sd' ' "$work/stock_one.times"); stock 3: $(paste -sd' ' "$work/stock_three.times"); etcdops 3: $(paste -sd' ' "$work/etcdops_three.times")"
