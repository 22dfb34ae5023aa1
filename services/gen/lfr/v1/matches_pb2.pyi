from lfr.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MatchCandidate(_message.Message):
    __slots__ = ("observation_id", "frame", "box", "det_score", "quality", "track_id", "model", "subject_id", "subject_category", "watchlist_id", "score", "rank", "threshold", "watchlist_image", "crop", "match_unix_ns")
    OBSERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    DET_SCORE_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    WATCHLIST_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    WATCHLIST_IMAGE_FIELD_NUMBER: _ClassVar[int]
    CROP_FIELD_NUMBER: _ClassVar[int]
    MATCH_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    observation_id: str
    frame: _common_pb2.FrameRef
    box: _common_pb2.BoundingBox
    det_score: float
    quality: float
    track_id: str
    model: _common_pb2.ModelVersion
    subject_id: str
    subject_category: _common_pb2.SubjectCategory
    watchlist_id: str
    score: float
    rank: int
    threshold: float
    watchlist_image: _common_pb2.ImageRef
    crop: _common_pb2.Crop
    match_unix_ns: int
    def __init__(self, observation_id: _Optional[str] = ..., frame: _Optional[_Union[_common_pb2.FrameRef, _Mapping]] = ..., box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., det_score: _Optional[float] = ..., quality: _Optional[float] = ..., track_id: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelVersion, _Mapping]] = ..., subject_id: _Optional[str] = ..., subject_category: _Optional[_Union[_common_pb2.SubjectCategory, str]] = ..., watchlist_id: _Optional[str] = ..., score: _Optional[float] = ..., rank: _Optional[int] = ..., threshold: _Optional[float] = ..., watchlist_image: _Optional[_Union[_common_pb2.ImageRef, _Mapping]] = ..., crop: _Optional[_Union[_common_pb2.Crop, _Mapping]] = ..., match_unix_ns: _Optional[int] = ...) -> None: ...
