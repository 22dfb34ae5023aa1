"""Connections to the platform's servers, each with a health check.

Every ``connect_*`` raises when the server does not answer (the service runner
retries with backoff); every ``check_*`` raises while it is down. Heavy client
libraries are imported inside the functions, not at import time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from services.common.settings import MilvusSettings, RedisSettings, TritonSettings


async def check_kafka(producer: Any) -> None:
    """A metadata round trip through a started AIOKafkaProducer (or consumer)."""
    await producer.client.fetch_all_metadata()


def redis_kwargs(settings: RedisSettings) -> dict[str, Any]:
    """Options of a redis client: timeouts, ACL user and password (the password file is read now), TLS files."""
    secret = settings.secret()
    kw: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout_s,
        "socket_connect_timeout": settings.socket_timeout_s,
        "username": settings.username,
        "password": secret.get_secret_value() if secret else None,
    }
    if settings.url.startswith("rediss://"):
        kw["ssl_cert_reqs"] = "required"
        if settings.ssl_ca_file is not None:
            kw["ssl_ca_certs"] = str(settings.ssl_ca_file)
        if settings.ssl_cert_file is not None:
            kw["ssl_certfile"] = str(settings.ssl_cert_file)
            kw["ssl_keyfile"] = str(settings.ssl_key_file)
    return kw


# pymilvus pings every 10 s even on an idle connection. In a long test session
# the native engine (milvus-lite 2.5.1) once answered a cached connection with
# GOAWAY "too many pings" (after a Milvus restart; not reproduced on a plain 45 s
# idle). Pinging only while calls are in flight removes idle pings altogether.
MILVUS_GRPC_OPTIONS: dict[str, Any] = {
    "grpc.keepalive_permit_without_calls": 0,
    "grpc.keepalive_time_ms": 60_000,
}


def milvus_client(uri: str, **kw: Any) -> Any:
    """A MilvusClient with the project's channel options (see MILVUS_GRPC_OPTIONS)."""
    from pymilvus import MilvusClient

    return MilvusClient(uri=uri, grpc_options={**MILVUS_GRPC_OPTIONS, **kw.pop("grpc_options", {})}, **kw)


def milvus_kwargs(settings: MilvusSettings) -> dict[str, Any]:
    """Options of a MilvusClient: the token (``user:password``, the token file is read now), timeout, CA file."""
    secret = settings.secret()
    kw: dict[str, Any] = {
        "uri": settings.uri,
        "token": secret.get_secret_value() if secret else "",
        "timeout": settings.timeout_s,
        "grpc_options": dict(MILVUS_GRPC_OPTIONS),
    }
    if settings.ca_file is not None:
        kw["server_pem_path"] = str(settings.ca_file)
    return kw


async def connect_redis(settings: RedisSettings) -> Any:
    from redis.asyncio import Redis

    client = Redis.from_url(settings.url, **redis_kwargs(settings))
    try:
        await client.ping()
    except BaseException:
        await client.aclose()
        raise
    return client


async def check_redis(client: Any) -> None:
    await client.ping()


async def connect_milvus(settings: MilvusSettings) -> Any:
    """A MilvusClient (synchronous API: call it through ``asyncio.to_thread``)."""

    def _connect() -> Any:
        from pymilvus import MilvusClient

        client = MilvusClient(**milvus_kwargs(settings))
        client.list_collections(timeout=settings.timeout_s)
        return client

    return await asyncio.to_thread(_connect)


async def check_milvus(client: Any, timeout_s: float) -> None:
    await asyncio.to_thread(client.list_collections, timeout=timeout_s)


async def connect_triton(settings: TritonSettings) -> Any:
    """A tritonclient asyncio gRPC client, once the server reports ready."""
    from tritonclient.grpc.aio import InferenceServerClient

    client = InferenceServerClient(url=settings.url, ssl=settings.ssl)
    try:
        await check_triton(client, settings.timeout_s)
    except BaseException:
        await client.close()
        raise
    return client


async def check_triton(client: Any, timeout_s: float) -> None:
    ready = await client.is_server_ready(client_timeout=timeout_s)
    if not ready:
        raise ConnectionError("triton is not ready")
