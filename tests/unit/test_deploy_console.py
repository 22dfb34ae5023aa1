"""The operator console as its image ships it (deploy/docker/service.Dockerfile, SERVICE=console): its page
assets are package data (a wheel holds only .py files otherwise, and the console would serve no page), the
development users file is where services.console.config.DEV_USERS_FILE looks inside the image (so a users file
holding the development users is refused there too), a console without that file refuses to start, and the
probes' page /healthz answers without a session, Redis or the platform."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path, PurePosixPath

import pytest
from aiohttp.test_utils import TestClient, TestServer

from deploy_support import ROOT
from services.console import app as console_app
from services.console.config import DEV_USERS_FILE, ConsoleOptions
from services.console.users import UsersFileError, hash_password

CONSOLE = ROOT / "services" / "console"
DOCKERFILE = ROOT / "deploy" / "docker" / "service.Dockerfile"


def test_page_assets_are_package_data() -> None:
    """Every file of static/ and templates/ is matched by pyproject's package-data of services.console."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"].get("package-data", {}).get("services.console", [])
    assets = [p.relative_to(CONSOLE).as_posix() for d in ("static", "templates") for p in (CONSOLE / d).rglob("*")
              if p.is_file()]
    assert assets
    missing = [a for a in assets if not any(fnmatch.fnmatchcase(a, pat) for pat in patterns)]
    assert not missing, f"not in the wheel (pyproject [tool.setuptools.package-data]): {missing}"


def test_image_holds_the_development_users_where_the_console_looks() -> None:
    """In the image services/ lives in the venv's site-packages: DEV_USERS_FILE resolves there, and the
    Dockerfile must copy deploy/local/console-users.yaml to exactly that path (of the base image's Python)."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    (python,) = re.findall(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)[.\w-]*$", text, flags=re.M)
    site = PurePosixPath(f"/opt/venv/lib/python{python}/site-packages")
    config_py = PurePosixPath(Path(console_app.__file__).parent.relative_to(ROOT).as_posix()) / "config.py"
    image_dev_users = site / DEV_USERS_FILE.relative_to(ROOT).as_posix()
    assert (site / config_py).parents[2] / "deploy" / "local" / "console-users.yaml" == image_dev_users
    copies = re.findall(r"^COPY\s+(\S+)\s+(\S+)$", text, flags=re.M)
    assert (DEV_USERS_FILE.relative_to(ROOT).as_posix(), str(image_dev_users)) in copies
    assert "RUN /opt/venv/bin/pip install --no-deps ." in text  # services/ is installed into site, not copied


def _users(path: Path) -> Path:
    path.write_text(f"users:\n- username: ann\n  password: '{hash_password('pw-ann', n=2**10)}'\n  roles: [operator]\n")
    return path


async def test_console_without_the_development_users_file_refuses_to_start(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """An image built without the development users could not refuse them: the console serves nothing."""
    options = ConsoleOptions(users_file=_users(tmp_path / "u.yaml"), http_host="0.0.0.0")  # type: ignore[call-arg]
    monkeypatch.setattr(console_app, "DEV_USERS_FILE", tmp_path / "missing" / "console-users.yaml")
    with pytest.raises(UsersFileError, match="development users file .* is missing"):
        console_app.Console(options, redis=object())


class NoRedis:
    """Fails the test if the probe page touches Redis."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"/healthz used Redis ({name})")


async def test_healthz_answers_without_session_redis_or_platform(tmp_path: Path) -> None:
    options = ConsoleOptions(users_file=_users(tmp_path / "u.yaml"), http_host="0.0.0.0")  # type: ignore[call-arg]
    console = console_app.Console(options, redis=NoRedis())
    client = TestClient(TestServer(console_app.build_app(console)))
    await client.start_server()
    try:
        resp = await client.get("/healthz")
        assert resp.status == 200 and await resp.text() == "ok\n"
        assert resp.headers["Cache-Control"] == "no-store" and "Set-Cookie" not in resp.headers
        page = await client.get("/alerts", allow_redirects=False)  # everything else still needs a session
        assert page.status == 303 and page.headers["Location"] == "/login"
    finally:
        await client.close()
        await console.platform.close()
