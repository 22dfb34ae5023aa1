"""`python -m services.officers`: officer availability, alert routing to devices, adjudication."""

from __future__ import annotations

import sys

from services.common.service import ServiceContext, load_settings, run_service
from services.officers.config import OfficersSettings
from services.officers.core import Officers


def main() -> int:
    settings = load_settings(OfficersSettings)

    async def setup(ctx: ServiceContext) -> None:
        ctx.spawn(Officers(ctx, settings).run(), "officers")

    return run_service("officers", settings, setup)


if __name__ == "__main__":
    sys.exit(main())
