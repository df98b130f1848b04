#!/usr/bin/env bash
# Installs, pinned and cached under .cache/, everything the tests and
# benchmarks use besides Go itself: the stock etcd 3.6.16 binaries (etcd,
# etcdctl, etcdutl), etcd's benchmark tool, and systemd-analyze. Idempotent.
# Prints the tools directory on its last line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=$root/.cache
stamp=$(cat "$root/tools/etcd/go.sum" "$root/tools/bench/go.sum" | sha256sum | cut -c1-12)
dir=$cache/tools/$stamp
mkdir -p "$dir"

build() { # build NAME MODULE_DIR PACKAGE
	if [ ! -x "$dir/$1" ]; then
		echo "tools: building stock $1 ($3)" >&2
		(cd "$root/tools/$2" && go build -trimpath -o "$dir/$1.part" "$3")
		mv "$dir/$1.part" "$dir/$1"
	fi
}
build etcd etcd go.etcd.io/etcd/server/v3
build etcdctl etcd go.etcd.io/etcd/etcdctl/v3
build etcdutl etcd go.etcd.io/etcd/etcdutl/v3
build benchmark bench go.etcd.io/etcd/v3/tools/benchmark

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "tools: installing systemd (for systemd-analyze verify)" >&2
	if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
	$sudo apt-get update -qq >&2
	$sudo apt-get install -y -qq --no-install-recommends systemd >&2
fi
echo "$dir"
