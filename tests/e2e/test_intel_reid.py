"""Re-identification across clips: the dark-haired woman enrolled from a still of
intel_walking_and_pause_3_people.gif, then intel_head_pose_female_and_male.gif
streamed (she turns and tilts her head; a man stands to her right).

The still: frame ENROL_FRAME (the three have stopped, faces frontal); her face is
the leftmost of the three the FacePipeline finds. The enrolment image is the
frame cropped around her face only (the watchlist refuses an image with several
faces), at its native resolution. The test reports her best score and whether
she alerted (for docs/accuracy.md); the man must not alert: with only her enrolled,
a man's alert would be a match of HIS face to her, so every match candidate's
box must lie on her (left) half of the frame.

Her best score: the best of her match candidates on lfr.matches when the matcher
matched her, else (nothing is said below the threshold, by design) the same
FacePipeline over the clip at the camera's fps against her enrolled embedding.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from e2e_support import E2E, VIDEO, best_offline_score, embeddings_of, video_frames

from services.cli.demo import Enrolment
from services.face.embedders import DEFAULT_EMBEDDER, calibrated_threshold

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

STILL_SOURCE = VIDEO / "intel_walking_and_pause_3_people.gif"
ENROL_FRAME = 35
WOMAN = Enrolment(name="Intel woman (dark hair)", subject_id="intel-woman", image=STILL_SOURCE)


async def _her_still() -> tuple[bytes, np.ndarray]:
    """PNG of the still cropped to her face, and her embedding in the full still."""
    frame = video_frames(STILL_SOURCE)[ENROL_FRAME]
    faces = sorted((await embeddings_of([frame]))[0], key=lambda f: float(f.box[0]))
    assert len(faces) == 3, f"expected the three people in frame {ENROL_FRAME}, found {faces}"
    her, neighbour = faces[0], faces[1]
    assert her.embedding is not None, f"her face must pass the quality gate: {her}"
    x1, y1, x2, y2 = (float(v) for v in her.box)
    w, h = x2 - x1, y2 - y1
    right = min(x2 + 0.6 * w, (x2 + float(neighbour.box[0])) / 2)  # stop before the man's face
    box = (int(max(0, x1 - 0.6 * w)), int(max(0, y1 - 0.6 * h)), int(right),
           int(min(frame.shape[0], y2 + 0.6 * h)))
    crop = frame[box[1]:box[3], box[0]:box[2]]
    ok, png = cv2.imencode(".png", crop)
    assert ok
    return png.tobytes(), her.embedding


async def test_intel_woman_reidentified_and_the_man_never_alerts(e2e: E2E) -> None:
    still, her_embedding = await _her_still()
    client = e2e.watchlists()
    wl = await e2e.new_watchlist(client, e2e.cameras["intel"].deployment_id, "intel re-id")
    try:
        resp = await client.enrol(wl, WOMAN, image=still,
                                  source_ref=f"file:{STILL_SOURCE.name}#frame={ENROL_FRAME},leftmost-face")
        assert resp.subject.image_count == 1
        run = await e2e.run("intel")
    finally:
        await client.close(wl, "e2e test done")
        await client.close_channel()
    print(f"\nintel: {run.summary()}")
    by_subject = run.alerts_by_subject()
    assert set(by_subject) <= {WOMAN.subject_id}
    assert by_subject.get(WOMAN.subject_id, 0) <= 1, "one alert per pass"
    width = cv2.VideoCapture(str(VIDEO / "intel_head_pose_female_and_male.gif")).get(cv2.CAP_PROP_FRAME_WIDTH)
    for m in run.matches:  # the man (right half) never matched her
        assert (m.box.x1 + m.box.x2) / 2 < width / 2, f"a match on the man's side: box {m.box}"
    best = run.best_match(WOMAN.subject_id)
    source = "the matcher's match candidates"
    if best is None:
        best, faces = await best_offline_score(her_embedding, Path(run.camera.source), run.camera.fps)
        source = f"FacePipeline over the clip at {run.camera.fps:g} fps ({faces} gated faces), below the matcher"
    alerted = bool(by_subject.get(WOMAN.subject_id))
    print(f"intel woman: best score {best:.3f} (threshold {calibrated_threshold(DEFAULT_EMBEDDER)}), "
          f"{'ALERTED' if alerted else 'no alert'}; the man: no alert; source: {source}")
