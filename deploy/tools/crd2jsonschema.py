"""Convert CustomResourceDefinition YAML into kubeconform JSON schemas.

Writes <out>/<group>/<kind-lowercase>_<version>.json for every served version's
openAPIV3Schema (kubeconform -schema-location '<out>/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json').
Unknown fields are rejected (additionalProperties: false) wherever the CRD does not allow them, as the
API server's structural pruning would drop them silently.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def strict(node: Any) -> Any:
    """Return a copy of an openAPIV3Schema with additionalProperties false on closed objects."""
    if isinstance(node, dict):
        out = {k: strict(v) for k, v in node.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


def convert(crd_file: Path, out: Path) -> list[Path]:
    written: list[Path] = []
    for doc in yaml.safe_load_all(crd_file.read_text(encoding="utf-8")):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        group = doc["spec"]["group"]
        kind = doc["spec"]["names"]["kind"].lower()
        for version in doc["spec"]["versions"]:
            schema = version.get("schema", {}).get("openAPIV3Schema")
            if not schema:
                continue
            schema = strict(schema)
            # metadata is validated by the API server, not by the CRD schema
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            path = out / group / f"{kind}_{version['name']}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(schema, indent=1, sort_keys=True), encoding="utf-8")
            written.append(path)
    return written


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write("usage: crd2jsonschema.py OUT_DIR CRD.yaml...\n")
        return 2
    out = Path(argv[0])
    total = sum(len(convert(Path(f), out)) for f in argv[1:])
    if total == 0:
        sys.stderr.write("no CRD versions with a schema found\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
