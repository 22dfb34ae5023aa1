"""FaceConfig: the face pipeline's settings (detector, quality gate, embedder), in one pydantic model.

The match threshold is not here: it belongs to the matcher and defaults to the embedder's calibration
(services/face/embedders.py, services/matcher/config.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.face.embedders import DEFAULT_EMBEDDER, acknowledgement_of, embedders


class DetectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_side: int = Field(
        640, ge=128, le=4096,
        description="FaceBoxes input size: the frame is resized (up or down, aspect kept) so that its longer "
                    "side is max_side, then zero-padded at the bottom/right to a multiple of 32. Frames with "
                    "the same padded size are batched together. Faces smaller than ~20 px at this scale are missed.")
    candidate_score: float = Field(
        0.5, ge=0, le=1,
        description="min FaceBoxes score for a box to go to O-Net (0.3 lets a pair of hands in the Friends photo "
                    "through, which O-Net then scores 0.91)")
    max_candidates: int = Field(50, ge=1, le=200, description="most FaceBoxes boxes per frame sent to O-Net")
    onet_score: float = Field(
        0.8, ge=0, le=1,
        description="min O-Net face probability to keep a face (0.6 lets a pair of hands through in the Friends photo)")
    onet_passes: int = Field(
        2, ge=1, le=3,
        description="O-Net runs per face. Pass 1 crops the squared FaceBoxes box and gives the landmarks; each "
                    "later pass re-crops the box the previous pass regressed and gives the final box and score. "
                    "Measured on lfw_dev: landmarks from pass 2 align worse for the embedder (TPIR at zero false "
                    "alerts 0.69 vs 0.77), but the pass-2 score rejects non-faces better (a pair of hands in the "
                    "Friends photo: 0.83 in pass 1, 0.67 in pass 2).")
    landmarks: Literal["facemesh", "onet"] = Field(
        "facemesh",
        description="where the 5 alignment points come from. facemesh: MediaPipe Face Mesh on the kept face (468 "
                    "points; eye-contour centres, nose tip, mouth corners). onet: O-Net's own 5 points (pass 1). "
                    "Measured on lfw_dev (TPIR at zero false alerts / at FPIR 1e-2): onet 0.70 / 0.84, facemesh "
                    "0.925 / 0.96 with the 192-d MobileFaceNet (docs/accuracy.md).")
    mesh_passes: int = Field(
        2, ge=1, le=3,
        description="Face Mesh runs per face: pass 1 crops the O-Net box enlarged by mesh_crop_scale, each later "
                    "pass re-crops around the previous pass's mesh (as MediaPipe's tracker does).")
    mesh_crop_scale: float = Field(1.5, ge=1.0, le=3.0,
                                   description="side of the Face Mesh crop / side of the face box (MediaPipe: 1.5)")
    nms_iou: float = Field(0.4, gt=0, le=1, description="IoU above which the lower-scored of two faces is dropped")
    min_face_px: int = Field(12, ge=1, le=1000, description="drop faces whose refined box is smaller (original px)")


class QualityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_eye_distance_px: float = Field(
        16.0, ge=0, le=1000,
        description="min inter-eye distance in the original frame, px (TOO_SMALL). The ArcFace template has "
                    "35 px between the eyes at 112x112; below ~16 px the aligned crop is mostly upsampling.")
    min_sharpness: float = Field(
        15.0, ge=0, le=1e5,
        description="min variance of the Laplacian of the aligned 112x112 grey crop (BLURRED). Sharp LFW faces "
                    "score 100-1000; a Gaussian blur of sigma 3 brings them below 10.")
    max_yaw_deg: float = Field(
        50.0, ge=0, le=90,
        description="max |yaw| estimated from the landmarks (nose offset from the eye midpoint along the eye "
                    "line, relative to half the eye distance, as asin) (NOT_FRONTAL)")
    max_pitch_deg: float = Field(
        45.0, ge=0, le=90,
        description="max |pitch| estimated from the landmarks (nose height between the eye line and the mouth "
                    "line against the template's 0.49, as asin) (NOT_FRONTAL)")
    min_det_score: float = Field(0.8, ge=0, le=1, description="min detector (O-Net) score (LOW_SCORE)")


class FaceConfig(BaseModel):
    """The face pipeline's settings: detector, quality gate, embedder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    embedder: str = Field(
        DEFAULT_EMBEDDER, min_length=1,
        description="the face embedder, an entry of the model manifest with an embedder block (services/models/"
                    "manifest.json; `lfr models list`). Every service of one platform must name the same one "
                    "(LFR_FACE__EMBEDDER): the matcher's default threshold is this embedder's calibration and "
                    "watchlists live in its own Milvus collection")

    detector: DetectorConfig = Field(default_factory=DetectorConfig, description="FaceBoxes + O-Net")
    quality: QualityConfig = Field(default_factory=QualityConfig, description="gate before embedding")
    flip_average: bool = Field(
        False, description="embed the face and its mirror image too and average the two (2x the embedder's cost). "
                           "Measured on lfw_dev with MobileFaceNet-512: TPIR at zero false alerts / at FPIR 1e-2 "
                           "0.9415 / 0.967 with, 0.94 / 0.9685 without: noise, so off (the 192-d MobileFaceNet "
                           "needed it)")
    embed_batch: int = Field(64, ge=1, le=1024, description="most faces per embedder call")

    accept_licence: str | None = Field(
        None, description="the acknowledgement token of an embedder whose terms forbid operational use "
                          "(LFR_FACE__ACCEPT_LICENCE; the model manifest's requires_acknowledgement): such an "
                          "embedder is never built (LFR_MODELS_ACCEPT_LICENCES) nor run without it. Set it only "
                          "where the force holds a licence, or for non-commercial research")

    @model_validator(mode="after")
    def _licence_acknowledged(self) -> "FaceConfig":
        token = acknowledgement_of(self.embedder)
        if token is not None and self.accept_licence != token:
            raise ValueError(f"embedder {self.embedder}'s terms forbid operational use (docs/model-cards.md): it "
                             f"runs only with face.accept_licence = {token} (LFR_FACE__ACCEPT_LICENCE), where the "
                             "force holds a licence or for non-commercial research")
        return self

    @field_validator("embedder")
    @classmethod
    def _known_embedder(cls, name: str) -> str:
        known = embedders()
        if name not in known:
            raise ValueError(f"unknown embedder {name!r}: choose one of {', '.join(sorted(known))} (the model "
                             "manifest's embedders, `lfr models list`)")
        return name
