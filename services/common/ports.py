"""The platform's local ports (the brief's): each service's gRPC and /metrics port, and the console's.

One table, read by the launcher (services/cli/launch.py, which adds a layout's offset) and by the local
Prometheus (services/stack/prometheus.py, which scrapes every metrics port)."""

from __future__ import annotations

from typing import Final

# service -> (gRPC port, /metrics port), before a layout's offset
SERVICE_PORTS: Final[dict[str, tuple[int, int]]] = {
    "ingest": (50051, 9101),
    "recognizer": (50052, 9102),
    "matcher": (50053, 9103),
    "alerts": (50054, 9104),
    "watchlist": (50055, 9105),
    "officers": (50056, 9106),
}
# the operator console: HTTP and /metrics (services/console/config.py's defaults)
CONSOLE_HTTP_PORT: Final = 8080
CONSOLE_METRICS_PORT: Final = 9107


def metrics_ports(offset: int = 0) -> dict[str, int]:
    """Every /metrics port of the platform (the six services and the console), shifted by ``offset``."""
    return {**{name: ports[1] + offset for name, ports in SERVICE_PORTS.items()},
            "console": CONSOLE_METRICS_PORT + offset}
