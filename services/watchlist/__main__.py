"""`python -m services.watchlist`: the watchlist service (gRPC 50055, metrics 9105)."""

from __future__ import annotations

import sys

from services.common.service import ServiceContext, load_settings, run_service
from services.watchlist.config import WatchlistSettings
from services.watchlist.server import setup


def main() -> int:
    settings = load_settings(WatchlistSettings)

    async def _setup(ctx: ServiceContext) -> None:
        await setup(ctx, settings)

    return run_service("watchlist", settings, _setup)


if __name__ == "__main__":
    sys.exit(main())
