"""The import graph of services/: runtime services share code only through the libraries.

A runtime service (a process of its own: ingest, recognizer, matcher, alerts, watchlist, officers,
console) never imports another runtime service nor a tool (the ``lfr`` command and its helpers); the
services talk over Kafka, gRPC and Redis, and what two of them must agree on (a key layout, a schema,
a rule) lives in services/common. services/common imports no service or tool package; of services.face
(a library) only services/common/acls.py may import, inside milvus_roles() (every embedder's faces
collection is granted). Tools may import the runtime services' client-side modules.

A runtime service's ``cli.py`` is the ``lfr <service>`` subcommand: tool code kept beside its service, which
the service's process never loads (no other module of the service may import it); it follows the tools' rules.

Every import counts: top-level, inside functions, ``from services import x``, relative imports and
``importlib.import_module("services.x")``. The other import-direction checks (tool to tool) are in
test_import_direction_collections_triton.py, with the helper below."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "services"

RUNTIME = frozenset({"ingest", "recognizer", "matcher", "alerts", "watchlist", "officers", "console"})
LIBRARIES = frozenset({"common", "face", "gen"})
TOOLS = frozenset({"cli", "stack", "models", "triton_repo", "eval", "audit"})
# the one place services/common may import services.face (lazily): the Milvus grants cover every embedder
COMMON_MAY_IMPORT_FACE = frozenset({"common/acls.py"})
CLI_MODULE = "cli"  # services/<runtime service>/cli.py: the service's `lfr` subcommand, tool code


@dataclasses.dataclass(frozen=True)
class Import:
    path: Path
    line: int
    module: str  # absolute dotted name

    def where(self, root: Path = REPO) -> str:
        return f"{self.path.relative_to(root)}:{self.line}: imports {self.module}"


def _module_parts(py: Path, root: Path) -> tuple[str, ...]:
    parts = py.relative_to(root).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def _from_base(py: Path, root: Path, node: ast.ImportFrom) -> str:
    """The absolute module of ``from <base> import ...`` (relative imports resolved against ``py``)."""
    if not node.level:
        return node.module or ""
    package = _module_parts(py, root)
    if py.name != "__init__.py":
        package = package[:-1]
    package = package[:len(package) - node.level + 1]
    return ".".join([*package, *([node.module] if node.module else [])])


def imports(package: Path, root: Path = REPO) -> Iterator[Import]:
    """Every module an import in the package's .py files names (``root``: the directory the dotted names start
    from). ``from a import b`` names a and a.b (b may be a module)."""
    for py in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(py.read_text(encoding="utf-8"), filename=str(py))):
            if isinstance(node, ast.Import):
                yield from (Import(py, node.lineno, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _from_base(py, root, node)
                yield Import(py, node.lineno, base)
                yield from (Import(py, node.lineno, f"{base}.{alias.name}") for alias in node.names
                            if alias.name != "*")
            elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)
                  and (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
                       or isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))):
                yield Import(py, node.lineno, node.args[0].value)


def imported_modules(package: Path) -> set[str]:
    """Every module named by an import anywhere in the package (inside functions too)."""
    return {i.module for i in imports(package)}


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "services" else None


def violations(services: Path) -> list[str]:
    """file:line: imports X, for every import that breaks the rules of the module docstring."""
    root = services.parent
    out, seen = [], set()
    for imp in imports(services, root):
        parts = imp.path.relative_to(services).parts
        owner, target = (parts[0] if len(parts) > 1 else None), _package_of(imp.module)
        if owner in RUNTIME and parts[1:] == (f"{CLI_MODULE}.py",):
            continue  # tool code: tools may import tools and the services' client-side modules
        if target is None or (imp.path, imp.line, target) in seen:
            continue
        if target == owner:
            if owner in RUNTIME and imp.module.split(".")[2:3] == [CLI_MODULE]:
                seen.add((imp.path, imp.line, target))
                out.append(f"{imp.where(root)} (the service's process would load its command line: keep what "
                           "both need in another module of the service)")
            continue
        seen.add((imp.path, imp.line, target))  # one finding per import statement and package
        if owner in RUNTIME and target in RUNTIME:
            out.append(f"{imp.where(root)} (runtime service {owner} imports runtime service {target}: "
                       "move what both need to services/common)")
        elif owner in RUNTIME and target in TOOLS:
            out.append(f"{imp.where(root)} (runtime service {owner} imports tool {target}: "
                       "move what it needs to services/common or into the service)")
        elif owner == "common" and (target in RUNTIME or target in TOOLS):
            out.append(f"{imp.where(root)} (services/common imports {target}: common is the bottom layer)")
        elif owner == "common" and target == "face" and "/".join(parts) not in COMMON_MAY_IMPORT_FACE:
            out.append(f"{imp.where(root)} (services/common imports the face library outside "
                       f"{sorted(COMMON_MAY_IMPORT_FACE)})")
    return out


def test_no_runtime_service_imports_another_service_or_a_tool_and_common_imports_none() -> None:
    found = violations(SERVICES)
    assert not found, "forbidden imports:\n" + "\n".join(found)


def test_every_package_under_services_is_classified() -> None:
    """A new package must say what it is (runtime service, library or tool) before the rules above apply to it."""
    packages = {p.name for p in SERVICES.iterdir() if p.is_dir() and any(p.rglob("*.py"))}
    assert packages == RUNTIME | LIBRARIES | TOOLS, packages ^ (RUNTIME | LIBRARIES | TOOLS)
    assert not (RUNTIME & LIBRARIES or RUNTIME & TOOLS or LIBRARIES & TOOLS)


@pytest.mark.parametrize(("path", "source", "bad"), [
    ("matcher/worker.py", "from services.officers.state import may_run\n", "services.officers.state"),
    ("matcher/worker.py", "def f():\n    import services.watchlist.store\n", "services.watchlist.store"),
    ("ingest/camera.py", "from services import recognizer\n", "services.recognizer"),
    ("officers/worker.py", "def f():\n    from ..alerts import passes\n", "services.alerts"),
    ("watchlist/server.py", "import importlib\nimportlib.import_module('services.audit.cli')\n", "services.audit.cli"),
    ("common/kafka.py", "from services.matcher.config import MatcherSettings\n", "services.matcher.config"),
    ("common/cameras.py", "from services.face.embedders import embedders\n", "services.face.embedders"),
    ("officers/api.py", "from services.officers.cli import main\n", "services.officers.cli"),
])
def test_the_check_sees_every_kind_of_import(tmp_path: Path, path: str, source: str, bad: str) -> None:
    services = tmp_path / "services"
    (services / path).parent.mkdir(parents=True)
    (services / path).write_text(source)
    (services / "common" / "acls.py").parent.mkdir(exist_ok=True)
    (services / "common" / "acls.py").write_text("def f():\n    from services.face.embedders import embedders\n")
    (services / "cli").mkdir()
    (services / "cli" / "up.py").write_text("from services.matcher.config import MatcherSettings\n")  # a tool: allowed
    (services / "alerts").mkdir(exist_ok=True)
    (services / "alerts" / "cli.py").write_text("from services.cli.grpc_cli import Target\n")  # tool code: allowed
    found = violations(services)
    assert len(found) == 1 and found[0].startswith(f"services/{path}:") and f"imports {bad}" in found[0], found
