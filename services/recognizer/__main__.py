"""`python -m services.recognizer`: the face detection + embedding service."""

from __future__ import annotations

import sys

from services.common.service import ServiceContext, load_settings, run_service
from services.recognizer.config import RecognizerSettings
from services.recognizer.worker import Recognizer


def main() -> int:
    settings = load_settings(RecognizerSettings)

    async def setup(ctx: ServiceContext) -> None:
        ctx.spawn(Recognizer(ctx, settings).run(), "recognizer")

    return run_service("recognizer", settings, setup)


if __name__ == "__main__":
    sys.exit(main())
