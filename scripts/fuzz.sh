#!/usr/bin/env bash
# Runs every fuzz target for a while each: scripts/fuzz.sh [TIME] [TARGET...]
# TIME is go test's -fuzztime (default 5s, as scripts/test.sh runs them);
# TARGETs are names such as FuzzParseName (default: all). Inputs that fail
# are written to the package's testdata/fuzz/<Target>/: commit them with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-5s}
shift || true
targets=(
	./backup:FuzzRevisionScanner
	./backup:FuzzParseName
	./backup:FuzzManifest
	./backup:FuzzBucketURL
	./backup:FuzzApplyPolicy
	./restore:FuzzMembers
	./server:FuzzConfigFile
)
for t in "${targets[@]}"; do
	pkg=${t%%:*} name=${t##*:}
	if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
	echo "fuzz $name ($pkg) for $fuzztime"
	go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s -parallel 2 "$pkg"
done
