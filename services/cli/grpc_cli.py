"""The gRPC plumbing of the `lfr` subcommands that call a service (`lfr alerts`, `lfr officer`, `lfr device`,
`lfr watchlist`), written once: the options naming the service (its address; a deadline and --json where a
command group takes them), the channel and stub, and what a failed call tells the user.

A call that never reached the service is the :class:`SetupError` of ``unreachable`` (nothing listening:
:attr:`Target.start` says how to start it; a TLS mismatch), exit 2. Any other failure of an asyncio call is a
SetupError too (UNAVAILABLE: "retry later"; anything else: :attr:`Target.fix`); a blocking call's prints
``lfr: CODE: details`` and exits 1. Nothing heavy is imported at import time (`lfr --help` stays fast)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Awaitable, Callable
from typing import Any

CALL_TIMEOUT_S = 10.0  # each unary call's deadline, where the command takes no --timeout


@dataclasses.dataclass(frozen=True)
class Target:
    """A service as a CLI's error messages name it."""

    what: str  # "officers service": "cannot reach the officers service at ..."
    start: str  # the fix when nothing answers at the address: how to start it, which option names another
    fix: str = "check the arguments"  # the fix of any other refusal (an asyncio call's)

    def unreachable(self, error: Any, address: str) -> Any:
        """The SetupError of a call that never reached the service, None when it answered."""
        from services.common.grpc_client import unreachable

        return unreachable(error, self.what, address, self.start)

    def failure(self, error: Any, address: str) -> Exception:
        """The SetupError an asyncio call's ``error`` (grpc.aio.AioRpcError) becomes."""
        import grpc

        from services.common.errors import SetupError

        if (why := self.unreachable(error, address)) is not None:
            return why
        if error.code() == grpc.StatusCode.UNAVAILABLE:
            return SetupError(f"{self.what} at {address} unavailable: {error.details()}", "retry later")
        return SetupError(f"{error.code().name}: {error.details()}", self.fix)


def add_service_options(parser: argparse.ArgumentParser, default: str, what: str, *, flag: str = "--addr",
                        timeout_s: float | None = None, json_help: str | None = None) -> None:
    """The options of a command that calls a service: ``flag`` (its host:port, default ``default``; ``what``
    names it in the help); with ``timeout_s``, --timeout (each call's deadline, seconds); with ``json_help``,
    --json."""
    parser.add_argument(flag, default=default, help=f"{what} (default %(default)s)")
    if timeout_s is not None:
        parser.add_argument("--timeout", type=float, default=timeout_s, help="deadline of each call, seconds")
    if json_help is not None:
        parser.add_argument("--json", action="store_true", help=json_help)


def run(coro: Awaitable[Any], address: str, target: Target) -> Any:
    """``asyncio.run(coro)``: a failed gRPC call in it becomes :meth:`Target.failure`."""
    import grpc

    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except grpc.aio.AioRpcError as e:
        raise target.failure(e, address) from e


def call(address: str, target: Target, stub: Callable[[Any], Any], rpc: Callable[[Any], Awaitable[Any]],
         identity: str | None = None) -> Any:
    """One asyncio call: a channel to ``address`` (as ``identity``: an officer acts as themselves), the stub
    ``stub(channel)``, ``await rpc(stub)``; its reply, or :meth:`Target.failure`."""
    from services.common.grpc_client import aio_channel

    async def go() -> Any:
        async with aio_channel(address, identity=identity) as channel:
            return await rpc(stub(channel))

    return run(go(), address, target)


def call_blocking(method: Callable[..., Any], request: Any, address: str, target: Target, timeout_s: float) -> Any:
    """``method(request)`` on a blocking stub: its reply; a call that never reached the service raises its
    SetupError, any other failure prints ``lfr: CODE: details`` and exits 1."""
    import grpc

    try:
        return method(request, timeout=timeout_s)
    except grpc.RpcError as e:
        if (why := target.unreachable(e, address)) is not None:
            raise why from e
        print(f"lfr: {e.code().name}: {e.details()}", file=sys.stderr)
        raise SystemExit(1) from e
