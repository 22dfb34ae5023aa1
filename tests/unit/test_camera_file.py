"""CameraFile (services/common/cameras.py), how every service holds its camera registry: one SetupError
wording naming the setting to fix, an edit picked up (a stat at most once per interval), a broken edit
keeping the last good registry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.common.cameras import CameraFile
from services.common.errors import SetupError

SETTING = "LFR_MATCHER__CAMERAS_FILE"


def _write(path: Path, *ids: str) -> None:
    path.write_text("cameras:\n" + "".join(f"  - {{id: {i}, zone: z1, deployment_id: op1, source: x.mp4}}\n"
                                           for i in ids))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _registry(tmp_path: Path, *ids: str) -> tuple[Path, Clock, CameraFile]:
    """A registry file of ``ids`` held by a CameraFile that looks at it at most once a (fake) second."""
    path, clock = tmp_path / "cameras.yaml", Clock()
    _write(path, *ids)
    return path, clock, CameraFile(path, SETTING, check_every_s=1.0, clock=clock)


def test_a_missing_file_names_the_setting_to_fix(tmp_path: Path) -> None:
    cameras = CameraFile(tmp_path / "cameras.yaml", SETTING)  # nothing read yet
    with pytest.raises(SetupError, match=f"camera registry {tmp_path}/cameras.yaml does not exist") as e:
        cameras.current()
    assert SETTING in e.value.fix and "deploy/local/cameras.yaml" in e.value.fix


@pytest.mark.parametrize("text", ["cameras: [{id: c1}]\n", "cameras: [\n", "cameras:\n  - {id: c1, zone: z1, "
                                  "deployment_id: op1, source: a}\n  - {id: c1, zone: z1, deployment_id: op1, "
                                  "source: b}\n"])
def test_an_invalid_file_is_a_setup_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(text)  # a missing field, broken YAML, a duplicate id
    with pytest.raises(SetupError, match=f"camera registry {path} is invalid") as e:
        CameraFile(path, SETTING).current()
    assert SETTING in e.value.fix


def test_an_edit_is_picked_up_at_most_once_per_interval(tmp_path: Path) -> None:
    path, clock, cameras = _registry(tmp_path, "c1")
    assert [c.id for c in cameras.cameras] == ["c1"]
    _write(path, "c1", "c2")
    assert cameras.get("c2") is None  # not looked at yet
    clock.now += 1.0
    assert cameras.get("c2") is not None


def test_a_broken_edit_or_a_removed_file_keeps_the_last_good_registry(tmp_path: Path) -> None:
    path, clock, cameras = _registry(tmp_path, "c1")
    first = cameras.current()
    path.write_text("cameras: [{id: c1}]\n")
    clock.now += 1.0
    assert cameras.current() is first
    path.unlink()
    clock.now += 1.0
    assert cameras.current() is first
    _write(path, "c3")
    clock.now += 1.0
    assert [c.id for c in cameras.cameras] == ["c3"]


def test_an_unchanged_file_is_not_read_again(tmp_path: Path) -> None:
    path, clock, cameras = _registry(tmp_path, "c1")
    first = cameras.current()
    clock.now += 5.0
    assert cameras.current() is first
    stat = path.stat()
    replacement = tmp_path / "new.yaml"  # same size, same mtime: the inode tells (a ConfigMap update swaps a link)
    _write(replacement, "c2")
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    replacement.replace(path)
    clock.now += 1.0
    assert [c.id for c in cameras.cameras] == ["c2"]


def test_missing_ok_is_an_empty_registry_until_the_file_appears(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    clock = Clock()
    cameras = CameraFile(path, "LFR_OFFICERS__CAMERAS_FILE", missing_ok=True, check_every_s=1.0, clock=clock)
    assert cameras.cameras == []
    _write(path, "c1")
    clock.now += 1.0
    assert cameras.get("c1") is not None
