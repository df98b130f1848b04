#!/usr/bin/env bash
# Hot migration with etcdops, end to end on one machine: the three example
# members of examples/cluster (infra1, infra2, infra3) serve some data, and
# `etcdops migrate` moves the live cluster onto three new members (infra4,
# infra5, infra6), one member at a time, starting each new member with
# --start-cmd and stopping each old one with --stop-cmd. README.md's
# "Migrating a cluster" is the same walkthrough for real hosts.
#
#   examples/migrate/walkthrough.sh
#
# Needs etcdops and etcdctl on PATH, or ETCDOPS=/path/etcdops ETCDCTL=/path/etcdctl.
# PORTS="c1 p1 c2 p2 c3 p3 c4 p4 c5 p5 c6 p6" picks the client and peer
# ports of the old members (default: examples/cluster's 2379 2380 22379
# 22380 32379 32380) and of the new ones (default 42379 42380 52379 52380
# 62379 62380); WORK=dir keeps the files there. Everything it starts is
# stopped when it exits.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
etcdops=${ETCDOPS:-etcdops}
etcdctl=${ETCDCTL:-etcdctl}
read -r -a ports <<<"${PORTS:-2379 2380 22379 22380 32379 32380 42379 42380 52379 52380 62379 62380}"
work=${WORK:-$(mktemp -d)}
stop() {
	for f in "$work"/*.pid; do
		[ -e "$f" ] || continue
		kill $(cat "$f") 2>/dev/null || true
	done
}
trap stop EXIT
step() { printf '\n== %s\n' "$*"; }
run() {
	printf '$ %s\n' "$*"
	"$@"
}
url() { echo "http://127.0.0.1:${ports[$1]}"; }
wait_healthy() { # wait_healthy URL...
	for _ in $(seq 600); do
		local healthy=0
		for c in "$@"; do
			curl -sf --max-time 1 "$c/health" | grep -q '"health":"true"' && healthy=$((healthy + 1))
		done
		[ "$healthy" = $# ] && return 0
		sleep 0.1
	done
	echo "the cluster did not become healthy; logs in $work" >&2
	exit 1
}
join() {
	local IFS=,
	echo "$*"
}

step "The example cluster of examples/cluster, and its data"
mkdir -p "$work/old"
defaults=(2379 2380 22379 22380 32379 32380)
ports_sed=()
for j in 0 1 2 3 4 5; do ports_sed+=(-e "s/127.0.0.1:${defaults[$j]}\b/127.0.0.1:${ports[$j]}/g"); done
old_clients=()
for i in 0 1 2; do
	n=infra$((i + 1))
	# The example's files, on the ports PORTS asked for.
	sed "${ports_sed[@]}" "$here/../cluster/$n.yml" >"$work/old/$n.yml"
	printf '$ %s\n' "(cd $work/old && etcdops serve --config-file $n.yml &)"
	(cd "$work/old" && exec "$etcdops" serve --config-file "$n.yml" >"$work/$n.log" 2>&1) &
	echo $! >"$work/$n.pid"
	old_clients+=("$(url $((2 * i)))")
done
endpoints=$(join "${old_clients[@]}")
wait_healthy "${old_clients[@]}"
for k in test1 test2 test3; do run "$etcdctl" --endpoints="$endpoints" put "$k" "value-$k"; done
run "$etcdctl" --endpoints="$endpoints" member list -w table

adds=() client_urls=() new_clients=()
for i in 3 4 5; do
	n=infra$((i + 1))
	adds+=(--add "$n=$(url $((2 * i + 1)))")
	client_urls+=("$n=$(url $((2 * i)))")
	new_clients+=("$(url $((2 * i)))")
done
migrate=("${adds[@]}" --remove infra1 --remove infra2 --remove infra3
	--client-urls "$(join "${client_urls[@]}")"
	--data-dir-template "$work/new/{name}.etcd" --config-dir "$work/new"
	--state-file "$work/migrate.json")

step "The plan: one member at a time, never below quorum"
run "$etcdops" migrate plan --endpoints="$endpoints" "${migrate[@]}"

step "The migration: each new member is added as a learner, started, caught up and promoted, then an old one goes"
# --start-cmd must return: it starts the member in the background (on real
# hosts: ssh {name} systemctl start etcdops). --stop-cmd stops an old member
# once it is out of the cluster.
start_cmd="$etcdops serve --config-file {config} >$work/{name}.log 2>&1 & echo \$! >$work/{name}.pid"
stop_cmd="kill \$(cat $work/{name}.pid)"
run "$etcdops" migrate run --endpoints="$endpoints" "${migrate[@]}" --start-cmd "$start_cmd" --stop-cmd "$stop_cmd"

step "The new cluster"
endpoints=$(join "${new_clients[@]}")
run "$etcdctl" --endpoints="$endpoints" member list -w table
run "$etcdctl" --endpoints="$endpoints" endpoint hashkv -w table
for k in test1 test2 test3; do
	got=$("$etcdctl" --endpoints="$endpoints" get "$k" --print-value-only)
	[ "$got" = "value-$k" ] || {
		echo "$k = '$got' after the migration, want value-$k" >&2
		exit 1
	}
done
run "$etcdctl" --endpoints="$endpoints" put after-migration ok

step "A rerun (against the new members) has nothing to do"
run "$etcdops" migrate run --endpoints="$endpoints" "${migrate[@]}" --start-cmd "$start_cmd" --stop-cmd "$stop_cmd"
echo
echo "migrated cluster serves every key and takes writes"
