"""The `lfr` subcommands that call a service share one gRPC plumbing (services/cli/grpc_cli.py): run
through `lfr` against in-process fakes of the officers and watchlist services, a reply is printed, a
refusal says what to check (exit 2, or `lfr: CODE: details` and exit 1 for `lfr watchlist`), a busy
service says "retry later", and nothing listening names the service and how to start it."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from lfr.v1 import officers_pb2, officers_pb2_grpc, watchlist_pb2_grpc

from services.cli.main import main


class Devices(officers_pb2_grpc.DeviceServiceServicer):
    def GetAlert(self, request, context):  # noqa: N802
        if request.alert_id == "missing":
            context.abort(grpc.StatusCode.NOT_FOUND, "no alert missing")
        return officers_pb2.AlertStatus(alert_id=request.alert_id)

    def Acknowledge(self, request, context):  # noqa: N802
        return officers_pb2.AcknowledgeResponse(first=request.officer_id == "first")


class Officers(officers_pb2_grpc.OfficerServiceServicer):
    def ListOfficers(self, request, context):  # noqa: N802
        if request.zone == "busy":
            context.abort(grpc.StatusCode.UNAVAILABLE, "draining")
        return officers_pb2.ListOfficersResponse()


class Watchlists(watchlist_pb2_grpc.WatchlistServiceServicer):
    def GetWatchlist(self, request, context):  # noqa: N802
        context.abort(grpc.StatusCode.NOT_FOUND, f"no watchlist {request.watchlist_id}")


@pytest.fixture()
def address(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("LFR_CLIENT__INSECURE", "true")  # the fakes serve plaintext
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    officers_pb2_grpc.add_DeviceServiceServicer_to_server(Devices(), server)
    officers_pb2_grpc.add_OfficerServiceServicer_to_server(Officers(), server)
    watchlist_pb2_grpc.add_WatchlistServiceServicer_to_server(Watchlists(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def test_replies_are_printed(address: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "status", "a-1", "--addr", address]) == 0
    assert '"alertId": "a-1"' in capsys.readouterr().out
    assert main(["alerts", "ack", "a-1", "--officer", "first", "--addr", address]) == 0
    assert capsys.readouterr().out == "a-1 acknowledged by first\n"
    assert main(["alerts", "ack", "a-1", "--officer", "late", "--addr", address]) == 0
    assert capsys.readouterr().out == "a-1 acknowledged by late (already acknowledged)\n"
    assert main(["officer", "status", "--zone", "z", "--addr", address]) == 0
    assert capsys.readouterr().out == "no officer on duty in z\n"


def test_a_refusal_says_what_to_check(address: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "status", "missing", "--addr", address]) == 2
    assert capsys.readouterr().err == ("lfr: error: NOT_FOUND: no alert missing — fix: check the alert id and the "
                                       "officer\n")
    assert main(["officer", "status", "--zone", "busy", "--addr", address]) == 2
    assert capsys.readouterr().err == (f"lfr: error: officers service at {address} unavailable: draining — fix: "
                                       "retry later\n")
    with pytest.raises(SystemExit) as exit_:
        main(["watchlist", "--address", address, "show", "wl-9"])
    assert exit_.value.code == 1
    assert capsys.readouterr().err == "lfr: NOT_FOUND: no watchlist wl-9\n"


def test_nothing_listening_names_the_service_and_how_to_start_it(address: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    gone = "127.0.0.1:9"  # discard: nothing listens
    for argv, what, start in (
            (["alerts", "status", "a-1", "--addr", gone], "the service", "start it or pass --addr"),
            (["officer", "off-duty", "o-1", "--addr", gone], "the officers service",
             "start it (python -m services.officers) or pass --addr"),
            (["watchlist", "--address", gone, "list"], "the watchlist service",
             "start it (python -m services.watchlist) or pass --address")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"lfr: error: cannot reach {what} at {gone}: nothing answers there"), err
        assert err.endswith(f" — fix: {start}\n"), err
