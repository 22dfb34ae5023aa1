"""Container health check: one grpc.health.v1 Check against the local gRPC port.

Used by the images' HEALTHCHECK (docker / compose) and by the production Kubernetes probes (the
kubelet's native `grpc:` probe cannot speak TLS). The port comes from LFR_GRPC__PORT (the services'
own setting); exit 0 when SERVING, else 1. With LFR_CLIENT__CA_FILE set (a server on mTLS)
it connects with TLS, presenting LFR_CLIENT__CERT_FILE / LFR_CLIENT__KEY_FILE; the server
certificate must name 127.0.0.1 or localhost (LFR_HEALTH_TLS_NAME overrides the name checked).
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def main() -> int:
    port = int(os.environ.get("LFR_GRPC__PORT", "50051"))
    service = os.environ.get("LFR_HEALTH_SERVICE", "")
    target = f"127.0.0.1:{port}"
    ca = os.environ.get("LFR_CLIENT__CA_FILE")
    try:
        if ca:
            cert, key = os.environ.get("LFR_CLIENT__CERT_FILE"), os.environ.get("LFR_CLIENT__KEY_FILE")
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(ca), private_key=_read(key) if key else None,
                certificate_chain=_read(cert) if cert else None)
            name = os.environ.get("LFR_HEALTH_TLS_NAME")
            options = [("grpc.ssl_target_name_override", name)] if name else []
            channel = grpc.secure_channel(target, creds, options=options)
        else:
            channel = grpc.insecure_channel(target)
        with channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2.0)
    except grpc.RpcError as exc:
        sys.stderr.write(f"health check failed: {exc.code().name}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"health check failed: cannot read {exc.filename}\n")
        return 1
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
