"""One ports table (services/common/ports.py) and one repository root (services/common/paths.py):
every default still has the brief's value, and no module under services/ writes its own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from services.alerts import cli as alerts_cli
from services.alerts.config import AlertsSettings
from services.common import ports
from services.common.paths import REPO_ROOT
from services.common.settings import GrpcServerSettings, MetricsSettings
from services.console.config import ConsoleOptions, ConsoleSettings, PlatformEndpoints
from services.ingest.config import IngestSettings
from services.matcher.config import MatcherSettings
from services.officers import device_client
from services.officers.config import OfficersSettings
from services.recognizer.config import RecognizerSettings
from services.watchlist import cli as watchlist_cli
from services.watchlist.config import WatchlistSettings

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "services"
# the brief's ports, written out here on purpose: the table must keep them
BRIEF = {"ingest": (50051, 9101), "recognizer": (50052, 9102), "matcher": (50053, 9103), "alerts": (50054, 9104),
         "watchlist": (50055, 9105), "officers": (50056, 9106)}


def _code_constants(path: Path) -> list[str]:
    """The module's number and string constants, without its docstrings (docs may name a port)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    return [str(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, (int, str)) and id(node) not in docstrings]


def test_the_table_is_the_brief() -> None:
    assert ports.SERVICE_PORTS == BRIEF
    assert (ports.CONSOLE_HTTP_PORT, ports.CONSOLE_METRICS_PORT) == (8080, 9107)


@pytest.mark.parametrize("cls,name", [(IngestSettings, "ingest"), (RecognizerSettings, "recognizer"),
                                      (MatcherSettings, "matcher"), (AlertsSettings, "alerts"),
                                      (WatchlistSettings, "watchlist"), (OfficersSettings, "officers")])
def test_each_service_config_defaults_to_its_row(cls: type, name: str) -> None:
    assert cls.section_defaults == {"grpc": {"port": BRIEF[name][0]}, "metrics": {"port": BRIEF[name][1]}}


def test_base_console_and_cli_defaults_keep_their_values() -> None:
    assert GrpcServerSettings().port == 50050 and MetricsSettings().port == 9100
    assert ConsoleSettings.section_defaults == {"metrics": {"port": 9107}}
    assert ConsoleOptions.model_fields["http_port"].default == 8080
    endpoints = PlatformEndpoints()
    assert (endpoints.alerts, endpoints.watchlist, endpoints.officers) == (
        "127.0.0.1:50054", "127.0.0.1:50055", "127.0.0.1:50056")
    targets = ConsoleOptions.model_fields["metrics_targets"].default_factory()  # type: ignore[misc,call-arg]
    assert targets == {name: f"http://127.0.0.1:{m}/metrics" for name, (_, m) in BRIEF.items()}
    assert (alerts_cli.ALERTS_ADDR, alerts_cli.OFFICERS_ADDR) == ("127.0.0.1:50054", "127.0.0.1:50056")
    assert device_client.OFFICERS_ADDR == "127.0.0.1:50056"
    assert watchlist_cli.DEFAULT_ADDRESS == "127.0.0.1:50055"


def test_no_module_under_services_writes_a_platform_port_but_the_table() -> None:
    port = re.compile(r"\b(5005\d|910\d)\b")
    offenders = [f"{path.relative_to(REPO)}: {tok}"
                 for path in sorted(SERVICES.rglob("*.py"))
                 if "gen" not in path.relative_to(SERVICES).parts[:1] and path != SERVICES / "common" / "ports.py"
                 for tok in _code_constants(path) if port.search(tok)]
    assert offenders == []


def test_the_repository_root_is_defined_once() -> None:
    assert REPO_ROOT == REPO
    definitions = [str(path.relative_to(REPO)) for path in sorted(SERVICES.rglob("*.py"))
                   if re.search(r"^\s*REPO_ROOT\s*(:[^=]*)?=", path.read_text(), re.MULTILINE)
                   or "Path(__file__).resolve().parents[2]" in path.read_text()]
    assert definitions == ["services/common/paths.py"]
