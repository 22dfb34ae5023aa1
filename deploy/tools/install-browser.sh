#!/usr/bin/env bash
# Installs what the operator console's browser tests need, idempotently:
#  - Debian's `chromium` (apt; nothing is downloaded by Playwright), and
#  - playwright-core from npm, `npm ci` with the committed lock
#    (tests/e2e/console/package-lock.json) into ${LFR_CACHE:-~/.cache/lfr}/node/console.
# Prints the node_modules path it prepared. Re-running it does nothing when both are there.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${LFR_CACHE:-$HOME/.cache/lfr}"
SRC="$REPO/tests/e2e/console"
DEST="$CACHE/node/console"

if ! command -v chromium >/dev/null 2>&1; then
  echo "install-browser: installing Debian's chromium (apt)" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y --no-install-recommends chromium >&2 || {
    $SUDO apt-get update >&2 && $SUDO apt-get install -y --no-install-recommends chromium >&2; }
fi

for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "install-browser: $tool is missing — fix: apt-get install -y nodejs npm" >&2; exit 2; }
done

# npm ci only when the lock changed since the last install
stamp="$DEST/.lock.sha256"
want="$(sha256sum "$SRC/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -d "$DEST/node_modules/playwright-core" ]; then
  echo "install-browser: npm ci playwright-core into $DEST" >&2
  mkdir -p "$DEST"
  cp "$SRC/package.json" "$SRC/package-lock.json" "$DEST/"
  (cd "$DEST" && npm ci --ignore-scripts --no-audit --no-fund >&2)
  echo "$want" > "$stamp"
fi
echo "$DEST/node_modules"
