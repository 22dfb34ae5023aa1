"""Lay out Triton's production model repository from the generated configs and the ONNX cache.

<out>/<model>/config.pbtxt   <- <spec>/production/<model>/config.pbtxt (generated, committed)
<out>/<model>/1/model.onnx   <- <onnx>/<models.yaml onnx: file>        (built by `lfr models build`)

Runs as the `models-init` compose service (and as an initContainer in k8s). Fails loudly when a
model's ONNX file is missing, so Triton never starts with a half-filled repository; an `opt_in` model
(models.yaml: its licence needs an acknowledgement to build it, e.g. w600k_mbf, non-commercial research
only) is laid out only when its ONNX file was provided, and skipped with a log line otherwise.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

import yaml

LOG = logging.getLogger("lfr.models_init")


def lay_out(spec: Path, onnx_dir: Path, out: Path) -> list[str]:
    """Copy configs and ONNX files into out; return the model names laid out."""
    models = yaml.safe_load((spec / "models.yaml").read_text(encoding="utf-8"))["models"]
    done: list[str] = []
    for model in models:
        name = model["name"]
        config = spec / "production" / name / "config.pbtxt"
        if not config.is_file():
            continue  # local-only model (e.g. identity)
        onnx_name = model.get("onnx")
        if not onnx_name:
            raise FileNotFoundError(f"model {name} has a production config but no onnx file in models.yaml")
        source = onnx_dir / onnx_name
        if not source.is_file():
            if model.get("opt_in"):
                LOG.info("not serving opt-in model %s: %s was not provided", name, source)
                continue
            raise FileNotFoundError(f"{source} is missing: run `lfr models build` on the host first")
        target = out / name
        (target / "1").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(config, target / "config.pbtxt")
        shutil.copyfile(source, target / "1" / "model.onnx")
        done.append(name)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", type=Path, required=True, help="deploy/triton (models.yaml, production/)")
    parser.add_argument("--onnx", type=Path, required=True, help="the ONNX model cache")
    parser.add_argument("--out", type=Path, required=True, help="the Triton model repository to fill")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        names = lay_out(args.spec, args.onnx, args.out)
    except (FileNotFoundError, KeyError, yaml.YAMLError) as exc:
        LOG.error("models-init failed: %s", exc)
        return 1
    LOG.info("laid out %d models: %s", len(names), ", ".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
