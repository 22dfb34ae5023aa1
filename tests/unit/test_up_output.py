"""`lfr up`'s output (services.cli.up.Output) survives the death of the pipe it writes to
(`make up 2>&1 | tee up.log`, then Ctrl-C kills tee first): the writes after it are dropped,
never raised, so the teardown that follows them runs to its end; the log file keeps every
line; the interpreter exits 0 with nothing said about a broken pipe. Also the block and the
live line's format."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from services.cli.up import STOP_SIGNALS, Output, ready_block

REPO = Path(__file__).resolve().parents[2]

# the child: prints, waits until its reader is gone, then "tears down" through more writes
CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from services.cli.up import Output
    out = Output(Path(sys.argv[1]) / "up.log")
    out.say("lfr up: the platform is running")
    out.status("live:   5.0 frames/s analysed | 3 faces | 1 alerts | consumer lag 0", persist=True)
    sys.stdin.readline()  # the test closed the reader
    for i in range(50):
        out.say(f"teardown step {i}")
        out.error(f"an error line {i}")
    out.say("services stopped")
    (Path(sys.argv[1]) / "teardown-done").write_text("yes")
    out.close()
""")


def test_a_dead_pipe_does_not_stop_the_teardown(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], cwd=REPO, stdin=subprocess.PIPE,
                             stdout=write_end, stderr=write_end)  # 2>&1 into the pipe
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        first = reader.readline()
    # the reader is gone (closed): every write from now on is EPIPE
    assert child.stdin is not None
    child.stdin.write(b"go\n")
    child.stdin.close()
    assert child.wait(30) == 0
    assert first == b"lfr up: the platform is running\n"
    assert (tmp_path / "teardown-done").read_text() == "yes"
    log = (tmp_path / "up.log").read_text()
    assert "teardown step 49" in log and "services stopped" in log and "an error line 49" in log
    assert "frames/s analysed" in log


def test_stderr_elsewhere_stays_when_stdout_dies(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    err = tmp_path / "stderr.txt"
    with err.open("wb") as err_file:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], cwd=REPO, stdin=subprocess.PIPE,
                                 stdout=write_end, stderr=err_file)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        reader.readline()
    assert child.stdin is not None
    child.stdin.write(b"go\n")
    child.stdin.close()
    assert child.wait(30) == 0
    text = err.read_text()
    assert "an error line 49" in text and "BrokenPipe" not in text and "Exception ignored" not in text, text


def test_non_tty_status_is_a_line_of_its_own(tmp_path: Path) -> None:
    stream_file = tmp_path / "stdout.txt"
    with stream_file.open("w") as stream:
        out = Output(tmp_path / "up.log", stream)
        assert not out.tty
        out.status("live: a", persist=False)
        out.say("ALERT x")
        out.status("live: b", persist=True)
        out.close()
    assert stream_file.read_text() == "live: a\nALERT x\nlive: b\n"
    log = (tmp_path / "up.log").read_text()
    assert "live: b" in log and "live: a" not in log


def test_every_stop_signal_leads_to_the_teardown() -> None:
    import signal

    assert set(STOP_SIGNALS) == {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def test_ready_block_says_what_a_person_needs() -> None:
    block = ready_block("http://127.0.0.1:8080/", "http://127.0.0.1:9090", "wl-1", "demo-op",
                        ["Lin-Manuel Miranda"], "zone-a", "demo-cam-1", Path("/x/clip.mp4"))
    assert "http://127.0.0.1:8080/  sign in as operator / operator-dev" in block
    assert "http://127.0.0.1:9090/" in block and "wl-1" in block and "demo-officer" in block
    assert "Ctrl-C" in block and "make down" in block
    assert "not in this stack" in ready_block("u", None, "w", "d", [], "z", "c", Path("v"))


def test_ready_block_names_the_embedder_and_where_its_threshold_comes_from(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.cli.up import embedder_line
    from services.face.embedders import DEFAULT_EMBEDDER, calibrated_threshold

    monkeypatch.delenv("LFR_MATCHER__THRESHOLD", raising=False)
    monkeypatch.delenv("LFR_FACE__EMBEDDER", raising=False)
    line = embedder_line()
    assert line == (f"{DEFAULT_EMBEDDER} (operational use permitted), match threshold "
                    f"{calibrated_threshold(DEFAULT_EMBEDDER)} (its calibration)")
    assert f"  embedder    {line}" in ready_block("u", None, "w", "d", [], "z", "c", Path("v"), line)
    monkeypatch.setenv("LFR_MATCHER__THRESHOLD", "0.61")
    monkeypatch.setenv("LFR_MATCHER__THRESHOLD_EMBEDDER", DEFAULT_EMBEDDER)
    assert embedder_line().endswith("match threshold 0.61 (LFR_MATCHER__THRESHOLD)")
