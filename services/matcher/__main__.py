"""`python -m services.matcher`: the watchlist matching service."""

from __future__ import annotations

import sys

from services.common.service import ServiceContext, load_settings, run_service
from services.matcher.config import MatcherSettings
from services.matcher.worker import Matcher


def main() -> int:
    settings = load_settings(MatcherSettings)

    async def setup(ctx: ServiceContext) -> None:
        ctx.spawn(Matcher(ctx, settings).run(), "matcher")

    return run_service("matcher", settings, setup)


if __name__ == "__main__":
    sys.exit(main())
