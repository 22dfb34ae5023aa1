#!/usr/bin/env bash
# make test: start the real local stack, run the whole suite, always stop the
# stack; the exit code is pytest's.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
LFR=.venv/bin/lfr
cleanup() { "$LFR" stack down >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM
start=$(date +%s)
if ! "$LFR" stack up; then
  echo "lfr: error: the local stack did not start (see .lfr/logs/) — fix: run 'lfr stack status' for the failing component" >&2
  exit 2
fi
.venv/bin/python -m pytest -q "$@"
rc=$?
echo "make test: pytest exit $rc after $(( $(date +%s) - start )) s"
exit $rc
