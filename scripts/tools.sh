#!/usr/bin/env bash
# Installs, pinned and cached under .cache/, everything the tests and
# benchmarks use besides Go itself: the stock etcd 3.6.16 binaries (etcd,
# etcdctl, etcdutl), stock etcd 3.5.35 (etcd-3.5, etcdctl-3.5, for migrations
# from 3.5), etcd's benchmark tool, systemd-analyze, and the
# object-store servers of internal/objtest (MinIO, fake-gcs-server, Azurite).
# Idempotent. Prints the tools directory on its last line.
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

# Stock etcd 3.5 is installed once into a folder named after its own go.sum
# under .cache/tools/ and linked into $dir, so changing the 3.6 pins does not
# rebuild it, nor it them.
old=$(sha256sum <"$root/tools/etcd35/go.sum" | cut -c1-12)
olddir=$cache/tools/etcd35-$old
for name in etcd etcdctl; do
	if [ ! -x "$olddir/$name" ]; then
		echo "tools: building stock $name 3.5 (tools/etcd35)" >&2
		mkdir -p "$olddir"
		pkg=go.etcd.io/etcd/server/v3
		if [ $name = etcdctl ]; then pkg=go.etcd.io/etcd/etcdctl/v3; fi
		(cd "$root/tools/etcd35" && go build -trimpath -o "$olddir/$name.part" "$pkg")
		mv "$olddir/$name.part" "$olddir/$name"
	fi
	if [ "$(readlink "$dir/$name-3.5" 2>/dev/null)" != "../etcd35-$old/$name" ]; then
		ln -sfn "../etcd35-$old/$name" "$dir/$name-3.5"
	fi
done

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "tools: installing systemd (for systemd-analyze verify)" >&2
	if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
	$sudo apt-get update -qq >&2
	$sudo apt-get install -y -qq --no-install-recommends systemd >&2
fi
if ! command -v promtool >/dev/null 2>&1; then
	echo "tools: installing prometheus (for promtool check/test rules of examples/monitoring)" >&2
	if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
	$sudo apt-get update -qq >&2
	$sudo apt-get install -y -qq --no-install-recommends prometheus >&2
fi
# Object-store servers for internal/objtest. Each is installed once into a
# folder named after its pin under .cache/objstore/ and linked into $dir, so
# changing a pin installs the new version without rebuilding etcd.
# MinIO's RELEASE.* tags are not semver: pin the pseudo-version of a commit
# (`go list -m github.com/minio/minio@latest`).
minio_version=v0.0.0-20260212201848-7aac2a2c5b7c
fakegcs_version=v1.56.1
# Azurite is pinned, with everything it needs, by the lock file next to it.
azurite_lock=$root/internal/objtest/testdata/azurite

# Moves the finished install $1 to $2 unless a concurrent run got there first.
settle() {
	mv -T "$1" "$2" 2>/dev/null || rm -rf "$1"
}
link() { # link PATH_UNDER_OBJSTORE NAME: a relative link, so .cache/ can move
	local target=../../objstore/$1
	if [ "$(readlink "$dir/$2" 2>/dev/null)" != "$target" ]; then ln -sfn "$target" "$dir/$2"; fi
}
goinstall() { # goinstall NAME MODULE VERSION
	local d=$cache/objstore/$1-$3
	if [ ! -x "$d/$1" ]; then
		echo "tools: installing $2@$3" >&2
		mkdir -p "$cache/objstore"
		local part
		part=$(mktemp -d "$d.part.XXXXXX")
		chmod 755 "$part"
		(cd "$root" && GOBIN=$part go install -trimpath "$2@$3") >&2 || { rm -rf "$part"; exit 1; }
		settle "$part" "$d"
	fi
	link "$1-$3/$1" "$1"
}
goinstall minio github.com/minio/minio "$minio_version"
goinstall fake-gcs-server github.com/fsouza/fake-gcs-server "$fakegcs_version"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "tools: installing nodejs and npm (for Azurite)" >&2
	if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
	$sudo apt-get update -qq >&2
	$sudo apt-get install -y -qq --no-install-recommends nodejs npm >&2
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
	echo "tools: Azurite needs Node.js >= 20, found $(node --version); install a newer nodejs" >&2
	exit 1
fi
azurite_stamp=$(cat "$azurite_lock/package.json" "$azurite_lock/package-lock.json" | sha256sum | cut -c1-12)
d=$cache/objstore/azurite-$azurite_stamp
if [ ! -f "$d/node_modules/azurite/dist/src/blob/main.js" ]; then
	echo "tools: installing Azurite ($azurite_lock/package-lock.json)" >&2
	mkdir -p "$cache/objstore"
	part=$(mktemp -d "$d.part.XXXXXX")
	chmod 755 "$part"
	cp "$azurite_lock/package.json" "$azurite_lock/package-lock.json" "$part/"
	(cd "$part" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error) >&2 || { rm -rf "$part"; exit 1; }
	settle "$part" "$d"
fi
link "azurite-$azurite_stamp/node_modules/azurite/dist/src/blob/main.js" azurite-blob.js
echo "$dir"
