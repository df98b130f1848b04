#!/usr/bin/env bash
# Runs every test: installs what they need (scripts/tools.sh, cached in
# .cache/), builds etcdops, then `go vet` and `go test`, and, for the whole
# suite, every fuzz target for FUZZTIME (5s) each (scripts/fuzz.sh). Extra
# arguments go to `go test` (e.g. scripts/test.sh -run TestServe ./server/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ETCDOPS_TOOLS=$(scripts/tools.sh | tail -n 1)
export ETCDOPS_TOOLS
mkdir -p .cache/bin
go build -o .cache/bin/etcdops ./cmd/etcdops
ETCDOPS_BIN=$root/.cache/bin/etcdops
export ETCDOPS_BIN
go vet ./...
if [ $# -gt 0 ]; then
	exec go test -count=1 -timeout 20m "$@"
fi
go test -count=1 -timeout 20m ./...
# Every fuzz target's committed corpus ran above as ordinary tests. New random
# inputs are explored here, briefly; a crash they find is written to the
# target's testdata/fuzz/ and fails the run. FUZZTIME=0 skips this phase (CI
# sets it, so that a submission's verdict does not depend on random inputs;
# scripts/fuzz.sh runs the targets for longer).
if [ "${FUZZTIME:-5s}" != 0 ]; then
	scripts/fuzz.sh "${FUZZTIME:-5s}"
fi
