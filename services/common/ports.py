"""The platform's local ports (the brief's): each service's gRPC and /metrics port, and the console's.

One table, read by every service config's defaults (``section_defaults``), the CLIs' default addresses
(``local_address``), the console's endpoints, the launcher (services/cli/launch.py, which adds a layout's offset)
and the local Prometheus (services/stack/prometheus.py, which scrapes every metrics port)."""

from __future__ import annotations

from typing import Any, Final

LOCALHOST: Final = "127.0.0.1"
# the generic defaults of services/common/settings.py (GrpcServerSettings, MetricsSettings); each service overrides them
BASE_GRPC_PORT: Final = 50050
BASE_METRICS_PORT: Final = 9100
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


def grpc_port(service: str) -> int:
    """The gRPC port of ``service`` (a key of SERVICE_PORTS)."""
    return SERVICE_PORTS[service][0]


def metrics_port(service: str) -> int:
    """The /metrics port of ``service`` (a key of SERVICE_PORTS)."""
    return SERVICE_PORTS[service][1]


def local_address(service: str) -> str:
    """``host:port`` of ``service``'s gRPC API on this machine (the CLIs' and the console's default)."""
    return f"{LOCALHOST}:{grpc_port(service)}"


def local_metrics_url(service: str) -> str:
    """The /metrics URL of ``service`` on this machine."""
    return f"http://{LOCALHOST}:{metrics_port(service)}/metrics"


def section_defaults(service: str) -> dict[str, dict[str, Any]]:
    """``service``'s grpc and metrics port defaults, in the shape of ServiceSettings.section_defaults."""
    grpc, metrics = SERVICE_PORTS[service]
    return {"grpc": {"port": grpc}, "metrics": {"port": metrics}}
