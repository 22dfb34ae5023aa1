"""`python -m services.triton_repo generate|check|assemble`."""

from __future__ import annotations

import argparse
import sys

from services.common.errors import SetupError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m services.triton_repo",
                                description="Triton model repository from deploy/triton/models.yaml")
    p.add_argument("action", choices=["generate", "check", "assemble"],
                   help="generate: rewrite deploy/triton/{local,production}; check: exit 1 if stale; "
                        "assemble: build the runtime repository the local Triton serves")
    args = p.parse_args(argv)
    from services.common.logs import configure_logging

    configure_logging(json_format=False)
    if args.action == "generate":
        from services.triton_repo.generate import generate

        for path in generate():
            print(path)
        return 0
    if args.action == "check":
        from services.triton_repo.generate import stale_files

        stale = stale_files()
        for rel in stale:
            print(f"stale: deploy/triton/{rel}")
        return 1 if stale else 0
    from services.common.paths import REPO_ROOT
    from services.common.stack_paths import StackPaths
    from services.triton_repo.assemble import assemble

    try:
        report = assemble(StackPaths.default(REPO_ROOT))
    except SetupError as e:
        print(e.one_line(), file=sys.stderr)
        return 2
    print(f"{report.root}: served {', '.join(report.served)}; skipped {', '.join(report.skipped) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
