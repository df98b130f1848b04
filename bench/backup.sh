#!/usr/bin/env bash
# Benchmarks `etcdops backup save` against stock `etcdctl snapshot save` to
# local disk, on the same member (stock etcd 3.6.16, real fsync) in one run:
# throughput to file:// and to MinIO on loopback, with zstd and with age,
# and peak RSS, for each database size. Prints a markdown table.
#
# The bucket phase puts `etcdops backup save` to MinIO (minio) against what
# operators do today (etcdctl+aws: stock `etcdctl snapshot save` to disk,
# then Debian's `aws s3 cp` of the file to the same MinIO, timed as one) and
# against MinIO's ceiling for that client (aws-cp: `aws s3 cp` of the
# finished snapshot file alone, from the page cache, no member streaming).
# minio-put is a second ceiling: curl PUTs the same file in one unsigned
# request. Ratios are against the phase's first run; the ceiling column is
# the run's throughput over the phase's ceiling run (aws-cp, else minio-put).
# Debian's awscli is installed (apt-get) when /usr/bin/aws is missing.
#
#   bench/backup.sh                       # 100 MiB and 1 GiB databases, 3 rounds
#   BENCH_RUNS="etcdctl+aws minio aws-cp" BENCH_SIZES_MIB=1024 BENCH_ROUNDS=5 bench/backup.sh  # the bucket goal
#   BENCH_SIZES_MIB="100" BENCH_ROUNDS=1 bench/backup.sh   # quick
#   BENCH_RUNS="etcdctl file|etcdctl minio" BENCH_RAW=1 bench/backup.sh  # some runs (|: phases), raw figures
#   BENCH_OUT=/dev/shm bench/backup.sh   # snapshots written to tmpfs: the tools' own cost, without the disk
#
# Everything it starts is stopped on exit; its data lives in a temp dir.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sizes=${BENCH_SIZES_MIB:-100 1024}
rounds=${BENCH_ROUNDS:-3}
tools=$(cd "$root" && scripts/tools.sh | tail -n 1)
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
phases=${BENCH_RUNS:-etcdctl file file+zstd file+age|etcdctl+aws minio aws-cp minio-put}
if [[ $phases == *aws* && ! -x /usr/bin/aws ]]; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq awscli >/dev/null
fi

work=$(mktemp -d /tmp/etcdops-bench-backup.XXXXXX)
# Where the snapshots go (etcdctl's file and the file:// bucket); BENCH_OUT=/dev/shm
# takes the disk out of the comparison.
outdir=$(mktemp -d "${BENCH_OUT:-$work}/etcdops-bench-out.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work" "$outdir"
}
trap cleanup EXIT

(cd "$root" && go build -o "$work/etcdops" ./cmd/etcdops && go build -o "$work/age-keygen" filippo.io/age/cmd/age-keygen)
"$work/age-keygen" -o "$work/age.key" 2>/dev/null
recipient=$(grep -o 'age1[0-9a-z]*' "$work/age.key" | head -n 1)

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# MinIO with one bucket.
mport=$(freeport)
export AWS_ACCESS_KEY_ID=benchadmin AWS_SECRET_ACCESS_KEY=benchadmin-secret
MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY \
	"$tools/minio" server --quiet --address "127.0.0.1:$mport" --console-address "127.0.0.1:$(freeport)" "$work/minio" >"$work/minio.log" 2>&1 &
minio_pid=$!
pids+=($minio_pid)
until curl -sf "http://127.0.0.1:$mport/minio/health/live" >/dev/null; do sleep 0.2; done
curl -sf -X PUT --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" --aws-sigv4 "aws:amz:us-east-1:s3" "http://127.0.0.1:$mport/bench" >/dev/null
s3url="s3://bench?endpoint=http://127.0.0.1:$mport&use_path_style=true&region=us-east-1&disable_https=true"
# Debian's aws CLI with its default transfer settings (8 MiB parts, 10 at a
# time), whatever this machine's own ~/.aws holds.
: >"$work/aws-config"
awscp() {
	AWS_CONFIG_FILE=$work/aws-config AWS_SHARED_CREDENTIALS_FILE=$work/aws-config AWS_DEFAULT_REGION=us-east-1 \
		/usr/bin/aws --endpoint-url "http://127.0.0.1:$mport" --only-show-errors s3 cp "$@"
}
export work mport
export -f awscp

# run LABEL CMD...: prints "seconds peak_rss_kib" of one run.
# measure CMD...: prints "seconds peak_rss_kib cpu_seconds" of one run; the CPU
# time adds up the command's, the etcd member's and MinIO's.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
measure() {
	local e0 m0
	e0=$(ticks "$etcd_pid") m0=$(ticks "$minio_pid")
	/usr/bin/time -f "%e %M %U %S" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
	awk -v e="$(($(ticks "$etcd_pid") - e0))" -v m="$(($(ticks "$minio_pid") - m0))" -v hz="$(getconf CLK_TCK)" \
		'{printf "%s %s %.2f %.2f %.2f %.2f\n", $1, $2, $3 + $4 + (e + m) / hz, $3 + $4, e / hz, m / hz}' "$work/time"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# ratio_to REF RUN: the median over rounds of REF's time over RUN's.
ratio_to() {
	paste <(echo "${secs[$1]}" | tr ' ' '\n' | grep .) <(echo "${secs[$2]}" | tr ' ' '\n' | grep .) |
		awk '{print $1/$2}' | median
}

floor=$(/usr/bin/time -f "%M" "$work/etcdops" version 2>&1 >/dev/null | awk '{printf "%.0f", $1/1024}')
echo "Peak RSS of \`etcdops version\` (the binary alone): $floor MiB"
echo
[[ ! -x /usr/bin/aws ]] || echo "$(/usr/bin/aws --version 2>&1)"
echo "| DB | run | MiB/s (median of $rounds) | ratio: phase's first run time / this (median of rounds) | throughput / ceiling (median of rounds) | peak RSS MiB (max) | CPU s: tool + etcd + MinIO (median) |"
echo "|---|---|---|---|---|---|---|"
for mib in $sizes; do
	cport=$(freeport) pport=$(freeport)
	"$tools/etcd" --name bench --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$cport" \
		--advertise-client-urls "http://127.0.0.1:$cport" --listen-peer-urls "http://127.0.0.1:$pport" \
		--initial-advertise-peer-urls "http://127.0.0.1:$pport" --initial-cluster "bench=http://127.0.0.1:$pport" \
		--quota-backend-bytes $((8 << 30)) --log-level error >"$work/etcd.log" 2>&1 &
	etcd_pid=$!
	pids+=($etcd_pid)
	ep="http://127.0.0.1:$cport"
	until "$tools/etcdctl" --endpoints "$ep" endpoint health >/dev/null 2>&1; do sleep 0.2; done
	# Fill with random (incompressible) 64 KiB values.
	"$tools/benchmark" --endpoints "$ep" --conns 8 --clients 8 put --key-size 16 --val-size 65536 \
		--total $((mib * 16)) --sequential-keys >/dev/null 2>&1
	dbsize=$("$tools/etcdctl" --endpoints "$ep" endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["dbSize"])')
	dbmib=$(awk -v b="$dbsize" 'BEGIN {printf "%.0f", b/1048576}')

	# Phases, each with its reference run first: the local-disk runs, then the
	# MinIO runs (MinIO keeps working in the background after an upload, which
	# would otherwise slow whatever runs next).
	IFS='|' read -ra phaselist <<<"$phases"
	for phase in "${phaselist[@]}"; do
		read -ra runs <<<"$phase"
		declare -A secs=() rss=() cpus=()
		ceiling=
		[[ " ${runs[*]} " != *" minio-put "* ]] || ceiling=minio-put
		[[ " ${runs[*]} " != *" aws-cp "* ]] || ceiling=aws-cp
		for ((r = 0; r < rounds; r++)); do
			order=("${runs[@]}")
			if ((r % 2)); then # every other round backwards: no run always follows the same one
				for ((i = ${#runs[@]} - 1, j = 0; i >= 0; i--, j++)); do order[j]=${runs[i]}; done
			fi
			for run in "${order[@]}"; do
				rm -rf "$outdir/bucket" "$work/minio/bench/"* && mkdir -p "$outdir/bucket"
				[[ $run != etcdctl* ]] || rm -f "$outdir/stock.db"
				# Every run starts with no other run's data waiting to be written back, and
				# (on file systems mounted with discard) no deleted snapshot being discarded.
				sync && sleep 1
				case $run in
				etcdctl) out=$(measure "$tools/etcdctl" --endpoints "$ep" snapshot save "$outdir/stock.db") ;;
				# What operators do today: etcdctl to local disk, then the aws CLI to the bucket.
				etcdctl+aws) out=$(measure bash -c 'set -e; "$1" --endpoints "$2" snapshot save "$3"; awscp "$3" "s3://bench/stock$4.db"' \
					- "$tools/etcdctl" "$ep" "$outdir/stock.db" "$r") ;;
				# MinIO's ceiling for that client: the aws CLI uploads the finished file alone.
				aws-cp) out=$(measure bash -c 'awscp "$1" "s3://bench/awscp$2.db"' - "$outdir/stock.db" "$r") ;;
				file) out=$(measure "$work/etcdops" backup save --endpoints "$ep" --to "file://$outdir/bucket" --tag b --quiet) ;;
				file+zstd) out=$(measure "$work/etcdops" backup save --endpoints "$ep" --to "file://$outdir/bucket" --tag b --quiet --compress) ;;
				file+age) out=$(measure "$work/etcdops" backup save --endpoints "$ep" --to "file://$outdir/bucket" --tag b --quiet --age-recipient "$recipient") ;;
				minio) out=$(measure "$work/etcdops" backup save --endpoints "$ep" --to "$s3url" --tag "b$r" --quiet) ;;
				# MinIO's own ceiling: one PUT of etcdctl's snapshot file, from the page cache, unsigned.
				minio-put) out=$(measure curl -sf -X PUT -T "$outdir/stock.db" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
					--aws-sigv4 "aws:amz:us-east-1:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "http://127.0.0.1:$mport/bench/put$r.db") ;;
				esac
				read -r s k c ct ce cm <<<"$out"
				[[ -z ${BENCH_RAW:-} ]] || echo "round $r $run ${s}s ${k}KiB cpu-s: tool $ct etcd $ce minio $cm" >&2
				secs[$run]+="$s "
				cpus[$run]+="$c "
				prev=${rss[$run]:-0}
				rss[$run]=$((k > prev ? k : prev))
			done
		done
		for run in "${runs[@]}"; do
			med=$(echo "${secs[$run]}" | tr ' ' '\n' | grep . | median)
			cpu=$(echo "${cpus[$run]}" | tr ' ' '\n' | grep . | median)
			# A ratio is the median of each round's ratio of times.
			ratio=$(ratio_to "${runs[0]}" "$run")
			ceil=-
			[[ -z $ceiling ]] || ceil=$(ratio_to "$ceiling" "$run")
			awk -v db="$dbmib" -v run="$run" -v s="$med" -v q="$ratio" -v cl="$ceil" -v k="${rss[$run]}" -v c="$cpu" \
				'BEGIN {printf "| %d MiB | %s | %.0f | %.2f | %s | %.0f | %.1f |\n", db, run, db/s, q, (cl == "-") ? cl : sprintf("%.2f", cl), k/1024, c}'
		done
		unset secs rss cpus
	done
	kill "$etcd_pid" && wait "$etcd_pid" 2>/dev/null || true
	rm -rf "$work/etcd"
done
