#!/usr/bin/env bash
# Creates (once) the services' virtualenv from requirements/lock.txt and the lint
# tool from requirements/lint.txt, keyed by the two files' hash and cached outside
# the clone, links it as .venv and installs this checkout into it (editable, no
# deps). Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${LFR_CACHE:-$HOME/.cache/lfr}"
PY="${LFR_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2]==(3,11) else 1)'; then
  echo "lfr: error: Python 3.11 is required (found $("$PY" --version 2>&1)) — fix: install python3.11 or set LFR_PYTHON" >&2
  exit 2
fi
HASH="$(cat "$ROOT/requirements/lock.txt" "$ROOT/requirements/lint.txt" | sha256sum | cut -c1-12)"
VENV="$CACHE/venv/$HASH"
if [ ! -x "$VENV/bin/python" ] || [ ! -f "$VENV/.complete" ]; then
  echo "lfr: creating the services venv at $VENV (first run only)" >&2
  rm -rf "$VENV.tmp" && mkdir -p "$CACHE/venv"
  "$PY" -m venv "$VENV.tmp"
  "$VENV.tmp/bin/pip" install -q --disable-pip-version-check -U "pip==26.3"
  if ! "$VENV.tmp/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements/lock.txt"; then
    echo "lfr: error: could not install requirements/lock.txt from PyPI — fix: check the network to PyPI (pip config) and rerun" >&2
    exit 2
  fi
  if ! "$VENV.tmp/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements/lint.txt"; then
    echo "lfr: error: could not install requirements/lint.txt (ruff) from PyPI — fix: check the network to PyPI (pip config) and rerun" >&2
    exit 2
  fi
  touch "$VENV.tmp/.complete"
  rm -rf "$VENV" && mv "$VENV.tmp" "$VENV"
  # a venv's scripts hard-code its path: rewrite the shebangs after the move
  grep -rlI "$VENV.tmp" "$VENV/bin" | xargs -r sed -i "s#$VENV.tmp#$VENV#g"
fi
ln -sfn "$VENV" "$ROOT/.venv"
# (re)point the editable install at this checkout; cheap, and a new clone moves it
if ! (cd / && "$ROOT/.venv/bin/python" -I -c "import services, pathlib, sys; sys.exit(0 if pathlib.Path(services.__file__).resolve().parent == pathlib.Path('$ROOT/services').resolve() else 1)") 2>/dev/null; then
  "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT" 2>&1 | grep -v -i warning >&2 || true
fi
