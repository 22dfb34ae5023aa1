"""The committed generated code in services/gen matches proto/ (run `make proto`)."""

from __future__ import annotations

from pathlib import Path

from services.cli import protogen


def test_generated_code_is_fresh() -> None:
    stale = protogen.stale_files()
    assert not stale, f"services/gen is stale, run `make proto`: {stale}"


def test_check_detects_a_stale_file(tmp_path: Path) -> None:
    gen = tmp_path / "gen"
    protogen.write(gen_root=gen)
    assert protogen.stale_files(gen_root=gen) == []
    victim = gen / "lfr" / "v1" / "frames_pb2.py"
    victim.write_text(victim.read_text() + "\n# edited by hand\n")
    (gen / "lfr" / "v1" / "old_pb2.py").write_text("# a file whose .proto was removed\n")
    stale = protogen.stale_files(gen_root=gen)
    assert "frames_pb2.py (differs)" in stale
    assert "old_pb2.py (no longer generated)" in stale


def test_generated_messages_round_trip() -> None:
    from lfr.v1 import dlq_pb2, faces_pb2

    obs = faces_pb2.FaceObservation(observation_id="o1", embedding=[0.5] * 192)
    obs.frame.camera_id = "cam-1"
    data = obs.SerializeToString()
    # packed repeated float: 192 * 4 bytes plus a small header, not 192 tagged fields
    assert len(data) < 192 * 4 + 32
    back = faces_pb2.FaceObservation.FromString(data)
    assert back.frame.camera_id == "cam-1" and len(back.embedding) == 192
    assert dlq_pb2.DeadLetterReason.Name(dlq_pb2.DEAD_LETTER_REASON_INTERNAL) == "DEAD_LETTER_REASON_INTERNAL"
