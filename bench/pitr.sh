#!/usr/bin/env bash
# Benchmarks point-in-time recovery against a stock etcd 3.6.16 member (real
# fsync) and MinIO, with `etcdops schedule --pitr` as the streamer (a
# snapshot at start, then the change log flushed every second). Phases, each
# chosen by BENCH_PHASES:
#
#   cost    put throughput of etcd's stock `benchmark put` (256 B values,
#           16 clients) with the streamer attached against the same member
#           without it (goal >= 0.95x) and with a plain `etcdctl watch`
#           of the whole keyspace, the cost of watching at all; rounds
#           rotate the three.
#   memory  the streamer's peak RSS (VmHWM) through a burst of
#           BENCH_BURST_RATE puts/s for BENCH_BURST_S seconds (goal
#           <= 128 MiB at 5,000/s for 60 s).
#   replay  BENCH_REVISIONS revisions logged to MinIO (puts of 256 B values
#           over 200,000 keys, one in four a transaction of three puts),
#           then `etcdops restore --to-revision latest` of one member from
#           the bucket, end to end (fetch, decode, replay, write the
#           member): revisions/s, MB/s of keys and values, wall time and
#           peak RSS (goal >= 100,000 revisions/s; 3.6M revisions, one hour
#           at 1,000 writes/s, in <= 60 s).
#
# Prints a markdown table per phase, with the command line that made it.
#
#   bench/pitr.sh                                     # defaults: a few minutes
#   BENCH_PHASES=replay BENCH_REVISIONS=1000000 bench/pitr.sh   # the replay goal
#   BENCH_PHASES=replay BENCH_REVISIONS=3600000 bench/pitr.sh   # one hour at 1,000 w/s
#   BENCH_PHASES=memory BENCH_BURST_S=60 bench/pitr.sh          # the memory goal
#
# Environment:
#   ETCDOPS_BIN       etcdops binary to test (default: built from this tree)
#   BENCH_PHASES      phases to run (default "rpo cost memory replay")
#   BENCH_KILLS       rpo: kills (default 5)
#   BENCH_RPO_RATE    rpo: puts/s (default 1000)
#   BENCH_ROUNDS      cost rounds of each kind (default 3)
#   BENCH_PUTS        puts per cost round (default 20000)
#   BENCH_BURST_RATE  memory: puts/s (default 5000)
#   BENCH_BURST_S     memory: seconds (default 60)
#   BENCH_REVISIONS   replay: revisions to log (default 200000)
#   TMPDIR            where everything goes (a real disk, not tmpfs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
phases=${BENCH_PHASES:-rpo cost memory replay}
kills=${BENCH_KILLS:-5}
rpo_rate=${BENCH_RPO_RATE:-1000}
rounds=${BENCH_ROUNDS:-3}
puts=${BENCH_PUTS:-20000}
burst_rate=${BENCH_BURST_RATE:-5000}
burst_s=${BENCH_BURST_S:-60}
revisions=${BENCH_REVISIONS:-200000}

. bench/lib.sh
for p in $phases; do
	case $p in
	rpo | cost | memory | replay) ;;
	*) echo "bench: BENCH_PHASES: $p: expected rpo, cost, memory or replay" >&2 && exit 2 ;;
	esac
done
command_line=$(pasteable bench/pitr.sh ETCDOPS_BIN BENCH_PHASES BENCH_KILLS BENCH_RPO_RATE BENCH_ROUNDS BENCH_PUTS BENCH_BURST_RATE BENCH_BURST_S BENCH_REVISIONS)

work=$(mktemp -d "${TMPDIR:-/var/tmp}/etcdops-bench-pitr.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
need_disk "$work" 0

tools=$(scripts/tools.sh | tail -n 1)
bin=${ETCDOPS_BIN:-}
if [ -z "$bin" ]; then
	go build -trimpath -o "$work/etcdops" ./cmd/etcdops
	bin=$work/etcdops
fi
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

export AWS_ACCESS_KEY_ID=benchadmin AWS_SECRET_ACCESS_KEY=benchadmin-secret
mport=$(freeport)
MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY \
	"$tools/minio" server --quiet --address "127.0.0.1:$mport" --console-address "127.0.0.1:$(freeport)" "$work/minio" >"$work/minio.log" 2>&1 &
pids+=($!)
until curl -sf "http://127.0.0.1:$mport/minio/health/live" >/dev/null; do sleep 0.2; done
curl -sf -X PUT --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" --aws-sigv4 "aws:amz:us-east-1:s3" "http://127.0.0.1:$mport/bench" >/dev/null
s3url="s3://bench?endpoint=http://127.0.0.1:$mport&use_path_style=true&region=us-east-1&disable_https=true"

# etcd_start: a fresh stock member (real fsync); sets ep and etcd_pid.
etcd_start() {
	local cport pport
	cport=$(freeport) pport=$(freeport)
	ep=http://127.0.0.1:$cport
	rm -rf "$work/etcd"
	"$tools/etcd" --name m --data-dir "$work/etcd" --log-level warn --quota-backend-bytes 8589934592 \
		--listen-client-urls "$ep" --advertise-client-urls "$ep" \
		--listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
		--initial-cluster "m=http://127.0.0.1:$pport" >"$work/etcd.log" 2>&1 &
	etcd_pid=$!
	pids+=("$etcd_pid")
	until curl -sf "$ep/health" >/dev/null; do
		kill -0 "$etcd_pid" 2>/dev/null || die "etcd exited: $(tail -n 5 "$work/etcd.log")"
		sleep 0.1
	done
	# One write first: a streamer started on a cluster never written to
	# (revision 1) stores no snapshot and its watch never starts ("watch
	# sent revision 2, expected 1"), a bug of its own.
	"$tools/etcdctl" --endpoints "$ep" put /bench/start x >/dev/null
}

# metric NAME: the streamer's value of etcdops_schedule_NAME (0 if absent).
metric() {
	curl -sf "http://$metrics/metrics" | awk -v m="etcdops_schedule_$1" '$1 ~ "^"m"([{]|$)" {v = $2} END {print v + 0}'
}

# streamer_start TAG [FLAG...]: `etcdops schedule --pitr` on ep (its
# snapshot comes at once, as the job's slot is due), with more flags if
# given; returns once it streams. Sets str_pid.
streamer_start() {
	metrics=127.0.0.1:$(freeport)
	"$bin" schedule --cron "0 0 1 1 *" --pitr --endpoints "$ep" --to "$s3url" --tag "$1" "${@:2}" \
		--metrics-addr "$metrics" --log-level warn >"$work/streamer.log" 2>&1 &
	str_pid=$!
	pids+=("$str_pid")
	for _ in $(seq 600); do
		[ "$(metric pitr_streaming)" = 1 ] && return
		kill -0 "$str_pid" 2>/dev/null || die "streamer exited: $(tail -n 5 "$work/streamer.log")"
		sleep 0.1
	done
	die "the streamer did not start streaming in 60 s: $(tail -n 5 "$work/streamer.log")"
}

# caught_up: waits until the log in the bucket reaches the member's revision.
caught_up() {
	local rev
	rev=$("$tools/etcdctl" --endpoints "$ep" endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
	for _ in $(seq 6000); do
		[ "$(metric pitr_last_flushed_revision)" -ge "$rev" ] && return
		sleep 0.1
	done
	die "the log did not reach revision $rev in 600 s"
}
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# writer EP RATE OUT (python, exec'd: its pid is the job's): puts /rpo/<n> at RATE/s through etcd's JSON gateway
# (8 connections) until SIGTERM, then writes "n acknowledged-unix-ns" of
# each acknowledged put to OUT.
writer() {
	exec python3 - "$@" <<'EOF'
import base64, http.client, json, signal, sys, threading, time, urllib.parse
ep, rate, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
u = urllib.parse.urlparse(ep)
acks, stop, start, conns = [], threading.Event(), time.time(), 8
signal.signal(signal.SIGTERM, lambda *a: stop.set())
def run(i):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    n = i
    while not stop.is_set():
        due = start + n / rate
        if due > time.time():
            time.sleep(due - time.time())
        body = json.dumps({"key": base64.b64encode(b"/rpo/%d" % n).decode(), "value": base64.b64encode(b"x" * 256).decode()})
        try:
            c.request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            if r.status == 200:
                acks.append((n, time.time_ns()))
        except Exception:
            stop.wait(0.05)
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
        n += conns
ts = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(conns)]
for t in ts: t.start()
while not stop.is_set(): stop.wait(0.2)
with open(out, "w") as f:
    for n, t in acks: f.write(f"{n} {t}\n")
EOF
}

phase_rpo() {
	local r kill_ns wpid rport rpport
	: >"$work/rpo.rows"
	for r in $(seq "$kills"); do
		etcd_start
		streamer_start "rpo$r"
		writer "$ep" "$rpo_rate" "$work/acks" &
		wpid=$!
		pids+=("$wpid")
		sleep "$(python3 -c 'import random; print(round(random.uniform(5, 15), 2))')"
		kill_ns=$(date +%s%N)
		kill -9 "$etcd_pid" "$str_pid"
		wait "$etcd_pid" "$str_pid" 2>/dev/null || true
		kill "$wpid"
		wait "$wpid" || true
		rm -rf "$work/restored"
		rpport=$(freeport) rport=$(freeport)
		"$bin" restore --from "$s3url" --tag "rpo$r" --to-revision latest --initial-cluster "r=http://127.0.0.1:$rpport" \
			--data-dir-template "$work/restored/{name}.etcd" -q >"$work/restore.log" 2>&1 ||
			die "restore failed: $(tail -n 3 "$work/restore.log"); the bucket: $("$bin" backup list --from "$s3url" 2>&1); the streamer: $(tail -n 5 "$work/streamer.log")"
		"$tools/etcd" --name r --data-dir "$work/restored/r.etcd" --log-level warn \
			--listen-client-urls "http://127.0.0.1:$rport" --advertise-client-urls "http://127.0.0.1:$rport" \
			--listen-peer-urls "http://127.0.0.1:$rpport" --initial-advertise-peer-urls "http://127.0.0.1:$rpport" \
			--initial-cluster "r=http://127.0.0.1:$rpport" >"$work/etcd-r.log" 2>&1 &
		etcd_pid=$!
		pids+=("$etcd_pid")
		until curl -sf "http://127.0.0.1:$rport/health" >/dev/null; do
			kill -0 "$etcd_pid" 2>/dev/null || die "restored etcd exited: $(tail -n 5 "$work/etcd-r.log")"
			sleep 0.1
		done
		"$tools/etcdctl" --endpoints "127.0.0.1:$rport" get --prefix /rpo/ --keys-only | grep . >"$work/restored.keys" || true
		stop "$etcd_pid"
		python3 - "$work/acks" "$work/restored.keys" "$kill_ns" "$r" >>"$work/rpo.rows" <<'EOF'
import sys
acks, keys, kill, r = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
have = {int(l.strip().rsplit("/", 1)[1]) for l in open(keys) if l.strip()}
acked = [(int(n), int(t)) for n, t in (l.split() for l in open(acks))]
missing = [(kill - t) / 1e9 for n, t in acked if n not in have]
old = [a for a in missing if a > 1]
print(f"| {r} | {len(acked)} | {len(missing)} | {len(old)} | {max(missing) if missing else 0:.2f} |")
EOF
		say "rpo kill $r: $(tail -n 1 "$work/rpo.rows")"
	done
	echo
	echo "\`$command_line\` (rpo: $rpo_rate puts/s of 256 B, the member and \`schedule --pitr\` killed -9 together $kills times)"
	echo
	echo "| kill | acknowledged | missing after restore latest | missing, acknowledged > 1 s before the kill | oldest missing, s before the kill |"
	echo "|---|---|---|---|---|"
	cat "$work/rpo.rows"
}

# cpu PID: the process's CPU time so far, in clock ticks (user + system).
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# cost: etcd's benchmark against a member alone ("without"), with a plain
# `etcdctl watch` of the whole keyspace to /dev/null ("watch": what any
# change capture costs etcd, the baseline an operator would compare a
# streamer against), and with `schedule --pitr` ("with"); modes rotate
# between rounds. Also the watcher's CPU seconds per round and etcd's slow
# watchers (a watcher that does not keep up makes etcd read its events
# back from the database).
phase_cost() {
	local -A rps=() wcpu=() ecpu=() slow=()
	local r mode out w_pid c0 e0 modes=(without watch with) order
	for r in $(seq "$rounds"); do
		order=("${modes[@]:$((r % 3))}" "${modes[@]:0:$((r % 3))}")
		for mode in "${order[@]}"; do
			etcd_start
			w_pid=
			case $mode in
			with)
				streamer_start "cost$r"
				w_pid=$str_pid
				;;
			watch)
				"$tools/etcdctl" --endpoints "$ep" watch --prefix '' >/dev/null 2>&1 &
				w_pid=$!
				pids+=("$w_pid")
				;;
			esac
			[ -n "$w_pid" ] && c0=$(cpu "$w_pid")
			e0=$(cpu "$etcd_pid")
			"$tools/benchmark" --endpoints="$ep" --conns=16 --clients=16 put --key-size=32 --val-size=256 \
				--total="$puts" --key-space-size=200000 >"$work/bench.out" 2>&1
			out=$(awk '/Requests\/sec:/ {print $2; exit}' "$work/bench.out")
			rps[$mode]="${rps[$mode]:-} $out"
			ecpu[$mode]="${ecpu[$mode]:-} $(awk -v a="$e0" -v b="$(cpu "$etcd_pid")" -v hz="$(getconf CLK_TCK)" -v n="$puts" 'BEGIN {print (b - a) / hz * 1000 / n}')"
			if [ -n "$w_pid" ]; then
				wcpu[$mode]="${wcpu[$mode]:-} $(awk -v a="$c0" -v b="$(cpu "$w_pid")" -v hz="$(getconf CLK_TCK)" 'BEGIN {print (b - a) / hz}')"
			fi
			slow[$mode]="${slow[$mode]:-} $(curl -sf "$ep/metrics" | awk '$1 == "etcd_debugging_mvcc_slow_watcher_total" {v = $2} END {print v + 0}')"
			say "cost round $r, $mode: $out puts/s"
			[ -n "$w_pid" ] && stop "$w_pid"
			stop "$etcd_pid"
		done
	done
	echo
	echo "\`$command_line\` (cost: $puts puts of 256 B, 16 clients, $rounds rounds each, medians)"
	echo
	echo "| watcher | puts/s | ratio to none | ratio to a plain watch | etcd CPU ms per put | watcher CPU s per round | etcd slow watchers (max) |"
	echo "|---|---|---|---|---|---|---|"
	local a w b
	# shellcheck disable=SC2086
	a=$(median ${rps[without]}) w=$(median ${rps[watch]}) b=$(median ${rps[with]})
	# shellcheck disable=SC2086
	awk -v a="$a" -v w="$w" -v b="$b" -v wc="$(median ${wcpu[watch]})" -v bc="$(median ${wcpu[with]})" \
		-v ea="$(median ${ecpu[without]})" -v ew="$(median ${ecpu[watch]})" -v eb="$(median ${ecpu[with]})" \
		-v sw="$(printf '%s\n' ${slow[watch]} | sort -g | tail -n 1)" -v sb="$(printf '%s\n' ${slow[with]} | sort -g | tail -n 1)" \
		'BEGIN {
			printf "| none | %.0f | 1.00 | | %.3f | | |\n", a, ea
			printf "| `etcdctl watch --prefix \"\"` to /dev/null | %.0f | %.2f | 1.00 | %.3f | %.1f | %d |\n", w, w / a, ew, wc, sw
			printf "| `schedule --pitr` to MinIO | %.0f | %.2f | %.2f | %.3f | %.1f | %d |\n", b, b / a, b / w, eb, bc, sb
		}'
}

phase_memory() {
	etcd_start
	streamer_start burst
	local base
	base=$(hwm "$str_pid")
	"$tools/benchmark" --endpoints="$ep" --conns=16 --clients=64 put --key-size=32 --val-size=256 \
		--rate="$burst_rate" --total=$((burst_rate * burst_s)) --key-space-size=200000 >"$work/bench.out" 2>&1
	local rps
	rps=$(awk '/Requests\/sec:/ {print $2; exit}' "$work/bench.out")
	caught_up
	local peak
	peak=$(hwm "$str_pid")
	say "memory: $rps puts/s for $((burst_rate * burst_s)) puts; streamer VmHWM $((base / 1024)) MiB before, $((peak / 1024)) MiB after"
	stop "$str_pid"
	stop "$etcd_pid"
	echo
	echo "\`$command_line\` (memory)"
	echo
	echo "| burst | puts/s reached | streamer peak RSS MiB (before the burst) |"
	echo "|---|---|---|"
	awk -v r="$rps" -v p="$peak" -v b="$base" -v n=$((burst_rate * burst_s)) -v s="$burst_s" \
		'BEGIN {printf "| %d puts of 256 B in %d s asked | %.0f | %.0f (%.0f) |\n", n, s, r, p / 1024, b / 1024}'
}

phase_replay() {
	etcd_start
	# Segments of about 1,000 revisions, as one second at 1,000 writes/s
	# makes them (the benchmark tool writes ~5,000/s here).
	streamer_start replay --pitr-interval 200ms
	# Revisions: 3/4 single puts, 1/4 transactions of three puts, in
	# chunks so that the two kinds interleave.
	local left=$revisions chunk n
	say "logging $revisions revisions"
	while [ "$left" -gt 0 ]; do
		chunk=$((left < 40000 ? left : 40000))
		n=$((chunk * 3 / 4))
		"$tools/benchmark" --endpoints="$ep" --conns=8 --clients=32 put --key-size=32 --val-size=256 \
			--total="$n" --key-space-size=200000 >/dev/null 2>&1
		"$tools/benchmark" --endpoints="$ep" --conns=8 --clients=32 txn-put --txn-ops=3 --key-size=32 --val-size=256 \
			--total=$((chunk - n)) --key-space-size=200000 >/dev/null 2>&1
		left=$((left - chunk))
	done
	caught_up
	stop "$str_pid"
	stop "$etcd_pid"
	sync # the member's and MinIO's writes, not the restore's
	local out=$work/restored
	/usr/bin/time -f '%e %U %S %M' -o "$work/time.out" \
		"$bin" restore --from "$s3url" --tag replay --to-revision latest --initial-cluster r=http://127.0.0.1:2380 \
		--data-dir-template "$out/{name}.etcd" -q -w json >"$work/restore.json" 2>"$work/restore.log" ||
		die "restore failed: $(tail -n 3 "$work/restore.log")"
	local wall user sys rss
	read -r wall user sys rss <"$work/time.out"
	rm -rf "$out"
	python3 - "$work/restore.json" "$wall" "$user" "$sys" "$rss" "$command_line" <<'EOF'
import json, sys
path, wall, user, sys_, rss, cmd = sys.argv[1:]
doc = json.load(open(path))
def find(d):
    if isinstance(d, dict):
        if "revisions" in d and "to_revision" in d:
            return d
        for v in d.values():
            r = find(v)
            if r: return r
    if isinstance(d, list):
        for v in d:
            r = find(v)
            if r: return r
def find_key(d, key):
    if isinstance(d, dict):
        if key in d and isinstance(d[key], list):
            return d[key]
        for v in d.values():
            r = find_key(v, key)
            if r is not None: return r
    if isinstance(d, list):
        for v in d:
            r = find_key(v, key)
            if r is not None: return r
rep = find(doc)
if rep is None:
    sys.exit("bench: no replay in the restore's output")
segs = len(find_key(doc, "segments") or [])
wall, took = float(wall), rep["took_ns"] / 1e9
revs, nbytes = rep["revisions"], rep["bytes"]
print()
print(f"`{cmd}` (replay, `etcdops restore --to-revision latest` of one member from MinIO)")
print()
print("| revisions | events | segments | replay s (fetch, decode, apply) | replay revisions/s | restore wall s (end to end) | end-to-end revisions/s | MB/s keys+values | CPU s | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|")
print(f"| {revs} | {rep['events']} | {segs} | {took:.1f} | {revs / took:.0f} | {wall:.1f} | {revs / wall:.0f} | {nbytes / wall / 1e6:.1f} | {float(user) + float(sys_):.1f} | {int(rss) / 1024:.0f} |")
EOF
}

for p in $phases; do
	"phase_$p"
done
