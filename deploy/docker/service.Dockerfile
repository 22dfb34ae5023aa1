# syntax=docker/dockerfile:1.7
# One slim, non-root image per LFR service, built from this shared Dockerfile:
#   docker build -f deploy/docker/service.Dockerfile --build-arg SERVICE=matcher -t lfr/matcher .
# docker-compose.yml builds one image per compose service (ingest, recognizer, matcher, alerts,
# watchlist, officers, console). The image runs `python -m services.$SERVICE` as uid 10001 and works with a
# read-only root filesystem (only /tmp must be writable: compose tmpfs / k8s emptyDir).
# The console's page assets (static/, templates/) are package data of services.console (pyproject.toml);
# its HTTP health is GET /healthz (compose and k8s probe it; the HEALTHCHECK below is gRPC, for the others).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Dependencies first (their layer is cached while only code changes). The lock pins every version.
COPY requirements/lock.txt requirements/lock.txt
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -r requirements/lock.txt
COPY pyproject.toml ./
COPY services ./services
RUN /opt/venv/bin/pip install --no-deps . \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && rm -rf /opt/venv/lib/python3.11/site-packages/pytest* /opt/venv/lib/python3.11/site-packages/_pytest

FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
# /var/lib/lfr/audit-checkpoints: LFR_AUDIT__CHECKPOINT_DIR of docker-compose.yml and .secure.yml; a fresh named
# volume mounted there takes this owner, so the service (10001) can append its signed checkpoints.
# /var/lib/lfr/dev-certs: where docker-compose.yml's audit-keys-init writes the development audit keys
# (`lfr audit keys init`) into the volume dev-audit-keys, likewise owned by 10001
RUN test -n "${SERVICE}" || (echo "build arg SERVICE is required (ingest|recognizer|matcher|alerts|watchlist|officers|console)" >&2; exit 1) \
 && groupadd --system --gid 10001 lfr \
 && useradd --system --uid 10001 --gid lfr --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin lfr \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/lfr/audit-checkpoints /var/lib/lfr/dev-certs
COPY --from=build /opt/venv /opt/venv
COPY deploy/docker/grpc_health_probe.py /opt/lfr/grpc_health_probe.py
# the DEVELOPMENT console users (published passwords), where services.console.config.DEV_USERS_FILE looks
# (<site-packages>/deploy/local): the console refuses a users file that holds them, and refuses to start
# without this file to compare against
COPY deploy/local/console-users.yaml /opt/venv/lib/python3.11/site-packages/deploy/local/console-users.yaml
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SERVICE_MODULE=services.${SERVICE}
USER 10001:10001
WORKDIR /tmp
# gRPC health (grpc.health.v1) on the service's gRPC port (LFR_GRPC__PORT).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "/opt/lfr/grpc_health_probe.py"]
ENTRYPOINT ["/bin/sh", "-c", "exec python -m \"$SERVICE_MODULE\" \"$@\"", "--"]
