"""The Face Mesh landmark stage's geometry: the 5 alignment points and the 3-D
head pose (synthetic meshes, no model needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.face.detector import (MESH_EYE_IMAGE_LEFT, MESH_EYE_IMAGE_RIGHT, MESH_MOUTH_IMAGE_LEFT,
                                    MESH_MOUTH_IMAGE_RIGHT, MESH_NOSE_TIP, five_points, mesh_crop, mesh_pose)


def frontal_mesh() -> np.ndarray:
    """A 468-point mesh whose eyes, nose tip and mouth corners sit where a frontal face has them."""
    rng = np.random.default_rng(0)
    mesh = np.zeros((468, 3))
    mesh[:, :2] = rng.uniform(40, 160, (468, 2))
    for idx, (x, y) in ((MESH_EYE_IMAGE_LEFT, (70.0, 80.0)), (MESH_EYE_IMAGE_RIGHT, (130.0, 80.0))):
        ring = np.linspace(0, 2 * math.pi, len(idx), endpoint=False)
        mesh[list(idx), 0] = x + 12 * np.cos(ring)
        mesh[list(idx), 1] = y + 5 * np.sin(ring)
        mesh[list(idx), 2] = 0.0
    mesh[MESH_NOSE_TIP] = (100.0, 110.0, -25.0)
    mesh[MESH_MOUTH_IMAGE_LEFT] = (78.0, 140.0, 0.0)
    mesh[MESH_MOUTH_IMAGE_RIGHT] = (122.0, 140.0, 0.0)
    return mesh


def test_five_points_are_eye_centres_nose_tip_mouth_corners_in_template_order() -> None:
    pts = five_points(frontal_mesh()[:, :2])
    assert pts.shape == (5, 2)
    np.testing.assert_allclose(pts, [[70, 80], [130, 80], [100, 110], [78, 140], [122, 140]], atol=1e-9)


@pytest.mark.parametrize("yaw_deg", [-40.0, -15.0, 0.0, 20.0, 45.0])
def test_pose_of_a_head_turned_about_the_vertical_axis(yaw_deg: float) -> None:
    mesh = frontal_mesh()
    centre = np.array([100.0, 110.0, 0.0])
    a = math.radians(yaw_deg)
    rot = np.array([[math.cos(a), 0, -math.sin(a)], [0, 1, 0], [math.sin(a), 0, math.cos(a)]])
    yaw, pitch = mesh_pose((mesh - centre) @ rot.T + centre)
    assert yaw == pytest.approx(yaw_deg, abs=1e-6)
    assert pitch == pytest.approx(0.0, abs=1e-6)


def test_pose_of_a_head_nodding() -> None:
    mesh = frontal_mesh()
    centre = np.array([100.0, 110.0, 0.0])
    a = math.radians(25.0)
    rot = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    yaw, pitch = mesh_pose((mesh - centre) @ rot.T + centre)
    assert abs(yaw) < 1e-6 and abs(pitch) == pytest.approx(25.0, abs=1e-6)


def test_mesh_crop_maps_back_to_frame_pixels() -> None:
    image = np.zeros((300, 400, 3), np.uint8)
    image[150, 200] = 255  # one bright pixel at the centre of the crop
    crop, inv = mesh_crop(image, np.array([200.0, 150.0]), 96.0)
    assert crop.shape == (192, 192, 3)
    y, x = np.unravel_index(int(np.argmax(crop[:, :, 0])), crop.shape[:2])
    back = inv @ np.array([x, y, 1.0])
    assert np.allclose(back, [200, 150], atol=1.0)
