"""`python -m services.alerts`: the alert aggregation and streaming service."""

from __future__ import annotations

import sys

from services.alerts.config import AlertsSettings
from services.alerts.worker import AlertWorker
from services.common.service import ServiceContext, load_settings, run_service


def main() -> int:
    settings = load_settings(AlertsSettings)

    async def setup(ctx: ServiceContext) -> None:
        ctx.spawn(AlertWorker(ctx, settings).run(), "alerts")

    return run_service("alerts", settings, setup)


if __name__ == "__main__":
    sys.exit(main())
