"""Regenerate the production Kafka ACL files from services/common/acls.py (THE table):

    .venv/bin/python deploy/kafka/render.py          # writes k8s/base/kafka/users.yaml, deploy/kafka/acls.sh
    .venv/bin/python deploy/kafka/render.py --check  # exit 1 when a file is out of date

tests/unit/test_kafka_acls.py runs the check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from services.common.acls import render_kafka_acls_script, render_strimzi_users  # noqa: E402

TARGETS = {
    ROOT / "k8s" / "base" / "kafka" / "users.yaml": render_strimzi_users,
    ROOT / "deploy" / "kafka" / "acls.sh": render_kafka_acls_script,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args()
    stale = []
    for path, render in TARGETS.items():
        text = render()
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.write_text(text, encoding="utf-8")
            if path.suffix == ".sh":
                path.chmod(0o755)
    if args.check and stale:
        sys.stderr.write(f"out of date: {', '.join(map(str, stale))} — fix: .venv/bin/python deploy/kafka/render.py\n")
        return 1
    for p in stale:
        sys.stdout.write(f"wrote {p}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
