#!/usr/bin/env bash
# Disaster recovery with etcdops, end to end on one machine: a 3-member
# cluster on loopback, a backup, the disaster (every member and its data
# gone), the restore of all three members from the backup, and the new
# cluster serving the data. README.md's "Disaster recovery" is the same
# walkthrough for real hosts.
#
#   examples/restore/walkthrough.sh
#
# Needs etcdops and etcdctl on PATH, or ETCDOPS=/path/etcdops ETCDCTL=/path/etcdctl.
# PORTS="c1 p1 c2 p2 c3 p3" picks the client and peer ports (default
# 41379 41380 42379 42380 43379 43380); WORK=dir keeps the files there.
# Everything it starts is stopped when it exits.
set -euo pipefail
etcdops=${ETCDOPS:-etcdops}
etcdctl=${ETCDCTL:-etcdctl}
read -r -a ports <<<"${PORTS:-41379 41380 42379 42380 43379 43380}"
work=${WORK:-$(mktemp -d)}
pids=()
stop() { # as abruptly as a disaster
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap stop EXIT
step() { printf '\n== %s\n' "$*"; }
run() {
	printf '$ %s\n' "$*"
	"$@"
}

names=(infra1 infra2 infra3)
clients=() cluster="" client_urls=""
for i in 0 1 2; do
	c=http://127.0.0.1:${ports[$((2 * i))]} p=http://127.0.0.1:${ports[$((2 * i + 1))]}
	clients+=("$c")
	cluster+="${cluster:+,}${names[$i]}=$p"
	client_urls+="${client_urls:+,}${names[$i]}=$c"
done
endpoints=$(
	IFS=,
	echo "${clients[*]}"
)
wait_healthy() {
	for _ in $(seq 600); do
		local healthy=0
		for c in "${clients[@]}"; do
			curl -sf --max-time 1 "$c/health" | grep -q '"health":"true"' && healthy=$((healthy + 1))
		done
		[ "$healthy" = 3 ] && return 0
		sleep 0.1
	done
	echo "the cluster did not become healthy; logs in $work" >&2
	exit 1
}

step "A 3-member cluster, and its data"
for i in 0 1 2; do
	n=${names[$i]}
	"$etcdops" serve --name "$n" --data-dir "$work/old/$n.etcd" \
		--listen-client-urls "${clients[$i]}" --advertise-client-urls "${clients[$i]}" \
		--listen-peer-urls "$(grep -o "$n=[^,]*" <<<"$cluster" | cut -d= -f2)" \
		--initial-advertise-peer-urls "$(grep -o "$n=[^,]*" <<<"$cluster" | cut -d= -f2)" \
		--initial-cluster "$cluster" --initial-cluster-token old-cluster --initial-cluster-state new \
		>"$work/$n.old.log" 2>&1 &
	pids+=($!)
done
wait_healthy
for k in test1 test2 test3; do run "$etcdctl" --endpoints="$endpoints" put "$k" "value-$k"; done

step "The backup (every night from cron, in real life)"
mkdir -p "$work/backups"
run "$etcdops" backup save --endpoints="$endpoints" --to "file://$work/backups" --compress -q
run "$etcdops" backup list --from "file://$work/backups"

step "The disaster: every member and its data dir are gone"
stop
pids=()
rm -rf "$work/old"

step "The restore: checks the snapshot, writes a data dir and a config file for every member"
run "$etcdops" restore --from "file://$work/backups" --snapshot latest \
	--initial-cluster "$cluster" --client-urls "$client_urls" \
	--data-dir-template "$work/new/{name}.etcd" --config-dir "$work/new" -q

step "The new cluster: each member starts from its generated config file"
for n in "${names[@]}"; do
	printf '$ %s\n' "$etcdops serve --config-file $work/new/$n.yml &"
	"$etcdops" serve --config-file "$work/new/$n.yml" >"$work/$n.new.log" 2>&1 &
	pids+=($!)
done
wait_healthy
run "$etcdctl" --endpoints="$endpoints" member list -w table
run "$etcdctl" --endpoints="$endpoints" endpoint hashkv -w table
for k in test1 test2 test3; do
	got=$("$etcdctl" --endpoints="$endpoints" get "$k" --print-value-only)
	[ "$got" = "value-$k" ] || {
		echo "$k = '$got' after the restore, want value-$k" >&2
		exit 1
	}
done
run "$etcdctl" --endpoints="$endpoints" put after-restore ok
echo
echo "restored cluster serves every key and takes writes"
