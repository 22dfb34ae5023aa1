#!/usr/bin/env bash
# make test: lint (ruff), start the real local stack, run the whole suite, always
# stop the stack; the exit code is pytest's (1 where pytest passed but the lint or
# the full-down check failed).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
LFR=.venv/bin/lfr
# The suites run the services on fixed gRPC ports 51000-55999 (the brief's 50051.. + 1000..5000), which lie in
# Linux's ephemeral range: an outgoing connection of any test (to Kafka, Triton...) can be given one of them as
# its local port, and the next service to bind it exits with "port taken" (seen once in a CI-like run). Where we
# may (root, writable /proc/sys), reserve that range from ephemeral allocation for the run and restore the old
# value after; elsewhere say so and go on (a rare flake, not a wrong result).
RESERVED=/proc/sys/net/ipv4/ip_local_reserved_ports
TEST_PORTS=51000-55999
old_reserved=""
reserved_set=0
if old_reserved=$(cat "$RESERVED" 2>/dev/null) && \
   echo "${old_reserved:+$old_reserved,}$TEST_PORTS" 2>/dev/null > "$RESERVED"; then
  reserved_set=1
else
  echo "make test: note: could not reserve ports $TEST_PORTS from ephemeral use ($RESERVED not writable)" >&2
fi
cleanup() {
  "$LFR" stack down >/dev/null 2>&1 || true
  if [ "$reserved_set" = 1 ]; then echo "$old_reserved" > "$RESERVED" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM
start=$(date +%s)
# Lint first (seconds, no stack); a failure fails make test after the suite has run, so one run reports both.
lint_rc=0
if ! .venv/bin/ruff check .; then
  lint_rc=1
  echo "make test: ruff check failed — fix: run 'make lint' to list the errors and fix them (no .venv/bin/ruff: make venv)" >&2
fi
# Each run scans the services' logs (privacy, secrets): start from empty ones.
# The previous run's service logs are kept one generation in .lfr/logs/previous/;
# the stack's own logs (open by running servers) stay where they are.
STATE="${LFR_STATE:-$ROOT/.lfr}"
if [ -d "$STATE/logs" ]; then
  rm -rf "$STATE/logs/previous" && mkdir -p "$STATE/logs/previous"
  find "$STATE/logs" -maxdepth 1 -name '*.log' ! -name redis.log ! -name kafka.log ! -name milvus.log ! -name prometheus.log \
    ! -name triton.log -exec mv -t "$STATE/logs/previous" {} +
fi
if ! "$LFR" stack up; then
  echo "lfr: error: the local stack did not start (see .lfr/logs/) — fix: run 'lfr stack status' for the failing component" >&2
  exit 2
fi
.venv/bin/python -m pytest -q "$@"
rc=$?
echo "make test: pytest exit $rc after $(( $(date +%s) - start )) s"
if [ "$lint_rc" != 0 ]; then
  echo "make test: failing: ruff check failed (see above; 'make lint' lists the errors)" >&2
  rc=$(( rc == 0 ? 1 : rc ))
fi
# The full-down check: `lfr stack down` must leave no process of ours (the
# process groups it started) and free every stack port; fail make test if not.
pids=$(awk 1 "${LFR_STATE:-.lfr}"/pids/*.pid 2>/dev/null | tr '\n' ' ')  # awk 1: pid files have no newline
if ! "$LFR" stack down; then
  rc=$(( rc == 0 ? 1 : rc ))
fi
if ! .venv/bin/python - $pids <<'PY'
import sys
from services.stack.base import group_alive, port_in_use
from services.stack.manager import load_components
left = [f"process group {p} still running" for p in map(int, sys.argv[1:]) if group_alive(p)]
left += [f"{c.name} port {c.host}:{port} still taken" for c in load_components() for port in c.ports
         if port_in_use(c.host, port)]
if left:
    print("lfr: error: after 'lfr stack down': " + "; ".join(left)
          + " — fix: stop them (ps -o pid,pgid,cmd; ss -ltnp) and fix the component's stop", file=sys.stderr)
    sys.exit(1)
print(f"make test: stack down clean ({len(sys.argv) - 1} process groups gone, all ports free)")
PY
then
  rc=$(( rc == 0 ? 1 : rc ))
fi
exit $rc
