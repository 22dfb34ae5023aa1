"""Bad input end to end: a corrupt JPEG, a message that is not a protobuf, a frame
from an unknown camera, an oversized frame and a frame published in clear (not
sealed) each land in the DLQ with their reason, and the pipeline (the real services) still turns good
frames sent after them (Lin-Manuel Miranda, enrolled) into one alert."""

from __future__ import annotations

import asyncio
import time

import cv2
import numpy as np
import pytest

from e2e_support import BOOTSTRAP, E2E, FACES_DIR, VIDEO, read_topic, sealed_frame, video_frames
from lfr.v1 import alerts_pb2, dlq_pb2, frames_pb2
from services.cli.demo import AlertListener, Enrolment
from services.cli.launch import DutyOfficer, wait_drained
from services.common.cameras import Camera
from services.common.kafka import record_key, start_producer
from services.common.settings import KafkaSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ENROL_VISIBLE_S = 3.0
LMM = Enrolment(name="Lin-Manuel Miranda", subject_id="lin-manuel-miranda",
                image=FACES_DIR / "lin_manuel_miranda_1.png")


def _frame(camera: Camera, seq: int, image: bytes) -> bytes:
    """In clear: only the unknown camera's (refused before sealing matters) and the unsealed one."""
    now = time.time_ns()
    return frames_pb2.Frame(camera_id=camera.id, zone=camera.zone, deployment_id=camera.deployment_id, seq=seq,
                            capture_unix_ns=now, publish_unix_ns=now, image=image,
                            encoding=frames_pb2.FRAME_ENCODING_JPEG).SerializeToString()


async def test_bad_frames_go_to_the_dlq_and_alerts_keep_coming(e2e: E2E) -> None:
    camera = e2e.cameras["dlq"]
    topics = e2e.layout.topics
    # seconds 3 to 6 of the clip at 5 fps: Lin-Manuel Miranda facing the camera (one pass: one alert)
    clip = [cv2.imencode(".jpg", f)[1].tobytes()
            for f in video_frames(VIDEO / "hamilton_white_house_short_clip.mp4", 5.0)[15:30]]
    good = clip[0]
    stranger = Camera(id=f"e2e-{e2e.tag}-not-registered", zone=camera.zone, deployment_id=camera.deployment_id,
                      source="x")
    bad = [
        (camera.id, await sealed_frame(camera, 1, b"\xff\xd8\xff\xe0" + b"corrupt" * 200),
         "DEAD_LETTER_REASON_CORRUPT_IMAGE"),
        (camera.id, b"not a protobuf \xff\xff", "DEAD_LETTER_REASON_DECODE_ERROR"),
        (stranger.id, _frame(stranger, 1, good), "DEAD_LETTER_REASON_UNKNOWN_CAMERA"),
        (camera.id, await sealed_frame(camera, 2, np.random.default_rng(1).bytes(2_500_000)),
         "DEAD_LETTER_REASON_OVERSIZED"),
        (camera.id, _frame(camera, 3, good), "DEAD_LETTER_REASON_UNSEALED"),
    ]
    client = e2e.watchlists()
    wl = await e2e.new_watchlist(client, camera.deployment_id, "dlq")
    officer = DutyOfficer(f"e2e-{e2e.tag}-officer", [camera.zone])
    listener = AlertListener(e2e.layout.grpc_port("alerts"), camera_ids=(camera.id,))
    producer = await start_producer(KafkaSettings(bootstrap=BOOTSTRAP), "e2e-dlq")
    try:
        await client.enrol(wl, LMM)
        # lfr_watchlist_faces is created with Milvus' default (Bounded) consistency: a vector
        # inserted this instant may not be searchable yet (here frames follow the enrolment at once)
        await asyncio.sleep(ENROL_VISIBLE_S)
        await officer.start()
        await listener.start()
        for key, value, _ in bad:
            await producer.send_and_wait(topics.frames, value=value, key=record_key(key))
        for seq, jpeg in enumerate(clip, start=4):
            await producer.send_and_wait(topics.frames, value=await sealed_frame(camera, seq, jpeg),
                                         key=record_key(camera.id))
        await wait_drained(e2e.layout, timeout_s=120, alive=e2e.pipeline.check_alive)
        await asyncio.sleep(0.5)
    finally:
        await producer.stop()
        await listener.stop()
        await officer.stop()
        await client.close(wl, "e2e test done")
        await client.close_channel()
    e2e.pipeline.check_alive()  # nobody crashed
    letters = [dlq_pb2.DeadLetter.FromString(v) for v in await read_topic(topics.dlq)]
    mine = [d for d in letters if d.source_key in {record_key(camera.id), record_key(stranger.id)}]
    reasons = sorted(dlq_pb2.DeadLetterReason.Name(d.reason) for d in mine)
    print(f"\ndead letters: {reasons}")
    assert reasons == sorted(r for _, _, r in bad), reasons
    for d in mine:
        assert d.service == "recognizer" and d.source_topic == topics.frames
        assert d.payload == b"", "frames are biometric: no payload bytes in a dead letter"
    alerts = [a for a in (alerts_pb2.Alert.FromString(v) for v in await read_topic(topics.alerts))
              if a.camera_id == camera.id]
    assert [a.subject_id for a in alerts] == [LMM.subject_id], "the good frame after the bad ones alerts"
    assert [a.subject_id for a in listener.alerts] == [LMM.subject_id]
