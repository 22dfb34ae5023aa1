"""`python -m services.officers`: officer availability, alert routing to devices, adjudication."""

from __future__ import annotations

import sys

from services.common.service import ServiceContext, load_settings, run_service
from services.officers.config import OfficersSettings
from services.officers.api import add_servicers
from services.officers.worker import Officers


def main() -> int:
    settings = load_settings(OfficersSettings)

    async def setup(ctx: ServiceContext) -> None:
        officers = Officers(ctx, settings)
        add_servicers(ctx, officers)
        ctx.spawn(officers.run(), "officers")

    return run_service("officers", settings, setup)


if __name__ == "__main__":
    sys.exit(main())
