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
scripts/fuzz.sh "${FUZZTIME:-5s}"
