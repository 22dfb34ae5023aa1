"""`python -m services.ingest`: the camera ingest service."""

from __future__ import annotations

import sys

from services.common.service import ServiceContext, load_settings, run_service
from services.ingest.camera import CameraIngestor
from services.ingest.config import IngestSettings


def main() -> int:
    settings = load_settings(IngestSettings)

    async def setup(ctx: ServiceContext) -> None:
        worker = CameraIngestor(ctx, settings)
        ctx.spawn(worker.run(), "camera-ingest")

    return run_service("ingest", settings, setup)


if __name__ == "__main__":
    sys.exit(main())
