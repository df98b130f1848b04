#!/usr/bin/env bash
# Benchmarks `etcdops serve` against the stock etcd binary (v3.6.16) on this
# machine with etcd's stock `benchmark put` tool, and prints a markdown table
# of the medians: throughput (req/s) and p99 latency, and etcdops/stock ratios.
#
# Both servers get the same flags: a single-member cluster on 127.0.0.1 (free
# ports), real fsync (never --unsafe-no-fsync), an 8 GiB quota, --log-level
# warn. Runs are interleaved: for each workload and round, stock and etcdops
# each run once (the order alternates between rounds), every run on a fresh
# data dir and a freshly started server, so that background load hits both.
#
# Usage: bench/serve.sh                    (3 rounds, ~4 min on a quiet 2-core machine)
#        BENCH_ROUNDS=15 bench/serve.sh    (~15 min; what a ±5% verdict needs here, see docs/benchmarks.md)
#        BENCH_QUICK=1 bench/serve.sh      (smoke check: 1 round, short runs)
#        BENCH_AA=1 bench/serve.sh         (A/A calibration: stock etcd in both columns)
#
# Environment:
#   ETCDOPS_BIN          etcdops binary to test (default: built from this tree)
#   BENCH_AA             1: run stock etcd where etcdops would run, to measure
#                        how far apart two identical servers come out (noise)
#   BENCH_ROUNDS         rounds per workload (default 3; 1 in quick mode)
#   BENCH_WORKLOADS      comma-separated subset of: small,10k (default both)
#   BENCH_SMALL_TOTAL    puts per small-value run (default 150000; 15000 quick)
#   BENCH_10K_TOTAL      puts per 10 KiB run (default 120000; 12000 quick)
#   BENCH_CLIENTS        clients (and connections) per run (default 100)
#   BENCH_QUIET          before each run, wait (up to 5 min) until other
#                        processes use less than this % of the CPU (default
#                        15; 0: do not wait). Each run reports what others
#                        used while it ran, as "others used".
#   TMPDIR               where the data dirs go (must be a real disk, not tmpfs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

quick=${BENCH_QUICK:-0}
[ "$quick" = 0 ] && q=1 || q=10 # quick mode divides the totals by 10
rounds=${BENCH_ROUNDS:-$([ "$quick" = 0 ] && echo 3 || echo 1)}
workloads=${BENCH_WORKLOADS:-small,10k}
small_total=${BENCH_SMALL_TOTAL:-$((150000 / q))}
large_total=${BENCH_10K_TOTAL:-$((120000 / q))}
clients=${BENCH_CLIENTS:-100}
quiet=${BENCH_QUIET:-15}
aa=${BENCH_AA:-0}
quota=$((8 * 1024 * 1024 * 1024))

. bench/lib.sh

# The exact command, as it can be pasted back.
command_line=$(pasteable bench/serve.sh ETCDOPS_BIN BENCH_AA BENCH_QUICK BENCH_ROUNDS BENCH_WORKLOADS BENCH_SMALL_TOTAL BENCH_10K_TOTAL BENCH_CLIENTS BENCH_QUIET)

work=$(mktemp -d "${TMPDIR:-/tmp}/etcdops-bench.XXXXXX")
srv_pid=
stop_server() {
	[ -n "$srv_pid" ] || return 0
	kill -TERM "$srv_pid" 2>/dev/null || true
	for _ in $(seq 300); do # 30 s, then SIGKILL
		kill -0 "$srv_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$srv_pid" 2>/dev/null || true
	wait "$srv_pid" 2>/dev/null || true
	srv_pid=
}
bench_pid=
cleanup() {
	if [ -n "$bench_pid" ]; then
		kill -TERM "$bench_pid" 2>/dev/null || true
		wait "$bench_pid" 2>/dev/null || true
	fi
	stop_server
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fstype=$(stat -f -c %T "$work")
case $fstype in
tmpfs | ramfs) die "TMPDIR is on $fstype, where fsync costs nothing; point TMPDIR at a real disk" ;;
esac

tools=$(scripts/tools.sh | tail -n 1)
for t in etcd etcdctl benchmark; do
	[ -x "$tools/$t" ] || die "$tools/$t missing (scripts/tools.sh failed?)"
done
if [ "$aa" = 1 ]; then
	ETCDOPS_BIN=$tools/etcd
elif [ -z "${ETCDOPS_BIN:-}" ]; then
	say "building etcdops"
	go build -trimpath -o "$work/etcdops" ./cmd/etcdops
	ETCDOPS_BIN=$work/etcdops
fi
[ -x "$ETCDOPS_BIN" ] || die "ETCDOPS_BIN=$ETCDOPS_BIN is not executable"

# free_port prints a port on 127.0.0.1 that no socket uses, below the
# ephemeral range (so that outgoing connections cannot take it meanwhile).
free_port() {
	local lo hi p
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
	hi=$((lo - 1))
	[ "$hi" -gt 20000 ] || hi=29999
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % (hi - 20000)))
		[ "$p" = "${1:-}" ] && continue
		if [ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# start_server KIND DATA_DIR LOG starts a member of stock etcd (KIND=stock) or
# etcdops serve (KIND=etcdops) and waits until /health says it serves. It sets
# srv_pid and endpoint. A start that loses its port to a race is retried.
start_server() {
	local kind=$1 dir=$2 log=$3 cport pport attempt i
	local -a cmd
	case $kind in
	stock) cmd=("$tools/etcd") ;;
	etcdops) if [ "$aa" = 1 ]; then cmd=("$tools/etcd"); else cmd=("$ETCDOPS_BIN" serve); fi ;;
	esac
	for attempt in 1 2 3; do
		cport=$(free_port)
		pport=$(free_port "$cport")
		rm -rf "$dir"
		"${cmd[@]}" \
			--name bench \
			--data-dir "$dir" \
			--listen-client-urls "http://127.0.0.1:$cport" \
			--advertise-client-urls "http://127.0.0.1:$cport" \
			--listen-peer-urls "http://127.0.0.1:$pport" \
			--initial-advertise-peer-urls "http://127.0.0.1:$pport" \
			--initial-cluster "bench=http://127.0.0.1:$pport" \
			--initial-cluster-state new \
			--quota-backend-bytes "$quota" \
			--log-level warn \
			>"$log" 2>&1 &
		srv_pid=$!
		endpoint=http://127.0.0.1:$cport
		for i in $(seq 600); do # 60 s
			if ! kill -0 "$srv_pid" 2>/dev/null; then
				wait "$srv_pid" 2>/dev/null || true
				srv_pid=
				break
			fi
			if curl -fsS --max-time 1 "$endpoint/health" 2>/dev/null | grep -q '"health":"true"'; then
				return 0
			fi
			sleep 0.1
		done
		if [ -n "$srv_pid" ]; then
			stop_server
			tail -n 20 "$log" >&2
			die "$kind did not become healthy in 60 s"
		fi
		if grep -q "address already in use" "$log"; then
			say "$kind: port taken (attempt $attempt), retrying on other ports"
			continue
		fi
		tail -n 20 "$log" >&2
		die "$kind exited before it was healthy"
	done
	die "$kind: could not get free ports"
}

# CPU accounting: how much of the machine other processes (not the server,
# not the benchmark tool) took during a run, which explains most of the
# noise on a shared machine, and how much CPU the server spent per put.
clk_tck=$(getconf CLK_TCK)
ncpu=$(nproc)
proc_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; } # utime+stime of a process
busy_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
children_secs() { # sets res_children: CPU seconds of this shell's reaped children
	times >"$work/times" # not $(times): a subshell has no children of ours
	res_children=$(awk 'NR == 2 {for (i = 1; i <= 2; i++) {split($i, a, /[ms]/); s += a[1] * 60 + a[2]}; print s}' "$work/times")
}

# wait_quiet waits until other processes used less than $quiet % of the CPU
# over 2 s (none of ours runs then), for at most 5 minutes.
wait_quiet() {
	local b0 b1 used waited=0
	[ "$quiet" != 0 ] || return 0
	while :; do
		b0=$(busy_ticks)
		sleep 2
		b1=$(busy_ticks)
		used=$(calc %.0f "($b1 - $b0) / $clk_tck / (2 * $ncpu) * 100")
		[ "$used" -ge "$quiet" ] || break
		if [ "$waited" -ge 300 ]; then
			say "others still use $used% of the CPU after 5 min; running anyway"
			break
		fi
		[ "$waited" != 0 ] || say "waiting for other processes to use less than $quiet% of the CPU (now $used%)"
		waited=$((waited + 2))
	done
}

# run_one KIND VAL_SIZE TOTAL does one benchmark run against a fresh server
# on a fresh data dir and sets res_rps (req/s), res_p99 (seconds), res_cpu
# (server CPU ms per 1000 puts) and res_others (% of the machine's CPU that
# other processes used during the run).
run_one() {
	local kind=$1 vsize=$2 total=$3 dir=$work/data out=$work/bench.out log=$work/server.log
	local s0 s1 b0 b1 c0 c1 t0 t1
	sync # the previous run's writes must not cost this one
	wait_quiet
	start_server "$kind" "$dir" "$log"
	children_secs
	c0=$res_children s0=$(proc_ticks "$srv_pid") b0=$(busy_ticks) t0=$EPOCHREALTIME
	# In the background, so that a signal ends the script at once.
	"$tools/benchmark" --endpoints="$endpoint" --conns="$clients" --clients="$clients" \
		put --key-size=8 --val-size="$vsize" --total="$total" --sequential-keys=false \
		>"$out" 2>"$out.err" &
	bench_pid=$!
	if ! wait "$bench_pid"; then
		bench_pid=
		tail -n 20 "$out" "$out.err" "$log" >&2
		die "benchmark failed against $kind"
	fi
	bench_pid=
	t1=$EPOCHREALTIME b1=$(busy_ticks) s1=$(proc_ticks "$srv_pid")
	children_secs
	c1=$res_children
	stop_server
	res_cpu=$(calc %.3f "($s1 - $s0) / $clk_tck * 1e6 / $total")
	res_others=$(calc %.1f "((($b1 - $b0) - ($s1 - $s0)) / $clk_tck - ($c1 - $c0)) / (($t1 - $t0) * $ncpu) * 100")
	case $res_others in -*) res_others=0.0 ;; esac
	if grep -q "Error distribution" "$out"; then
		sed -n '/Error distribution/,$p' "$out" >&2
		die "benchmark against $kind got errors"
	fi
	res_rps=$(awk '/Requests\/sec:/ {print $2; exit}' "$out")
	res_p99=$(awk '$1 == "99%" && $2 == "in" {print $3; exit}' "$out")
	[ -n "$res_rps" ] && [ -n "$res_p99" ] || {
		cat "$out" >&2
		die "cannot parse the benchmark summary"
	}
	rm -rf "$dir"
}

median() { # median of the arguments
	printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
calc() { awk "BEGIN {printf \"$1\", $2}"; }

stock_version=$("$tools/etcd" --version | awk '/etcd Version/ {print $3}')
if [ "$aa" = 1 ]; then
	etcdops_version="$stock_version (BENCH_AA=1: stock etcd runs in the etcdops column)"
else
	etcdops_version=$("$ETCDOPS_BIN" serve --version | awk '/etcd Version/ {print $3}')
fi
say "stock etcd $stock_version, etcdops serve on etcd $etcdops_version; $(nproc) CPUs; data in $work ($fstype)"
say "rounds=$rounds workloads=$workloads clients=$clients small_total=$small_total 10k_total=$large_total"

table=() cputable=() rounds_log=() pairs=() busy=()
IFS=, read -ra wls <<<"$workloads"
for wl in "${wls[@]}"; do
	case $wl in
	small) vsize=256 total=$small_total name="small (256 B values)" ;;
	10k) vsize=10240 total=$large_total name="10 KiB values" ;;
	*) die "unknown workload $wl (want small or 10k)" ;;
	esac
	declare -A rps=() p99=() cpu=() others=() cur_rps=() cur_p99=()
	pair_rps=() pair_p99=()
	for r in $(seq "$rounds"); do
		# Alternate which server goes first, so that neither always runs
		# on a machine that the other has just warmed up (or loaded).
		if [ $((r % 2)) = 1 ]; then order="stock etcdops"; else order="etcdops stock"; fi
		for kind in $order; do
			run_one "$kind" "$vsize" "$total"
			rps[$kind]="${rps[$kind]:-} $res_rps"
			p99[$kind]="${p99[$kind]:-} $res_p99"
			cpu[$kind]="${cpu[$kind]:-} $res_cpu"
			others[$kind]="${others[$kind]:-} $res_others"
			cur_rps[$kind]=$res_rps cur_p99[$kind]=$res_p99
			line=$(printf '%-20s round %d  %-7s  %8.1f req/s  p99 %6.1f ms  server CPU %5.1f ms/1k puts  others used %4.1f%% CPU' \
				"$name" "$r" "$kind" "$res_rps" "$(calc %.1f "$res_p99 * 1000")" "$res_cpu" "$res_others")
			rounds_log+=("$line")
			say "$line"
		done
		# This round's pair ran back to back: its ratios are less exposed to
		# slow swings in background load than the ratio of the medians.
		pair_rps+=("$(calc %.6f "${cur_rps[etcdops]} / ${cur_rps[stock]}")")
		pair_p99+=("$(calc %.6f "${cur_p99[etcdops]} / ${cur_p99[stock]}")")
		line=$(printf '%-20s round %d  etcdops/stock: req/s %.3f, p99 %.3f' "$name" "$r" "${pair_rps[-1]}" "${pair_p99[-1]}")
		rounds_log+=("$line")
		say "$line"
	done
	# shellcheck disable=SC2086
	{ s_cpu=$(median ${cpu[stock]}) e_cpu=$(median ${cpu[etcdops]}); }
	cputable+=("$(printf '| %s | %.1f ms | %.1f ms | %.3f |' "$name" "$s_cpu" "$e_cpu" "$(calc %.6f "$e_cpu / $s_cpu")")")
	pairs+=("$(printf '%s: req/s %.3f, p99 %.3f' "$name" "$(median "${pair_rps[@]}")" "$(median "${pair_p99[@]}")")")
	# shellcheck disable=SC2086
	busy+=("$(printf '%s: %.0f%% (stock runs), %.0f%% (etcdops runs)' "$name" "$(median ${others[stock]})" "$(median ${others[etcdops]})")")
	# shellcheck disable=SC2086 # word splitting of the lists is wanted
	{
		s_rps=$(median ${rps[stock]}) e_rps=$(median ${rps[etcdops]})
		s_p99=$(median ${p99[stock]}) e_p99=$(median ${p99[etcdops]})
	}
	table+=("$(printf '| %s, %d clients, %d puts | %.0f | %.0f | %.3f | %.1f ms | %.1f ms | %.3f |' \
		"$name" "$clients" "$total" "$s_rps" "$e_rps" "$(calc %.6f "$e_rps / $s_rps")" \
		"$(calc %.3f "$s_p99 * 1000")" "$(calc %.3f "$e_p99 * 1000")" "$(calc %.6f "$e_p99 / $s_p99")")")
	unset rps p99 cpu others cur_rps cur_p99
done

cat <<EOF

Per run:
\`\`\`
$(printf '%s\n' "${rounds_log[@]}")
\`\`\`

Medians of $rounds interleaved round(s); etcd $stock_version; etcdops serve on etcd $etcdops_version; $ncpu CPUs; $(date -u +%Y-%m-%d).

| workload | stock req/s | etcdops req/s | ratio (goal ≥ 0.95) | stock p99 | etcdops p99 | ratio (goal ≤ 1.05) |
|---|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${table[@]}")

Server CPU time per 1000 puts (medians; it also depends on load, through batching):

| workload | stock | etcdops | ratio |
|---|---:|---:|---:|
$(printf '%s\n' "${cputable[@]}")

Median of the per-round etcdops/stock ratios: $(IFS=';'; echo "${pairs[*]}" | sed 's/;/; /g').
Median share of the machine's CPU that other processes used during the runs: $(IFS=';'; echo "${busy[*]}" | sed 's/;/; /g').

Command: \`$command_line\`
Each run: \`benchmark --endpoints=<member> --conns=$clients --clients=$clients put --key-size=8 --val-size=<256|10240> --total=<puts> --sequential-keys=false\`
EOF
