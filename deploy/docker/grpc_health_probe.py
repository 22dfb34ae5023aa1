"""Container health check: one grpc.health.v1 Check against the local gRPC port.

Used by the images' HEALTHCHECK (docker / compose). Kubernetes uses its native `grpc:` probes instead.
The port comes from LFR_GRPC__PORT (the services' own setting); exit 0 when SERVING, else 1.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main() -> int:
    port = int(os.environ.get("LFR_GRPC__PORT", "50051"))
    service = os.environ.get("LFR_HEALTH_SERVICE", "")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2.0)
    except grpc.RpcError as exc:
        sys.stderr.write(f"health check failed: {exc.code().name}\n")
        return 1
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
