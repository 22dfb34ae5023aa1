from lfr.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QualityRejection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUALITY_REJECTION_UNSPECIFIED: _ClassVar[QualityRejection]
    QUALITY_REJECTION_TOO_SMALL: _ClassVar[QualityRejection]
    QUALITY_REJECTION_BLURRY: _ClassVar[QualityRejection]
    QUALITY_REJECTION_POSE: _ClassVar[QualityRejection]
    QUALITY_REJECTION_LOW_DET_SCORE: _ClassVar[QualityRejection]
    QUALITY_REJECTION_OUT_OF_FRAME: _ClassVar[QualityRejection]
QUALITY_REJECTION_UNSPECIFIED: QualityRejection
QUALITY_REJECTION_TOO_SMALL: QualityRejection
QUALITY_REJECTION_BLURRY: QualityRejection
QUALITY_REJECTION_POSE: QualityRejection
QUALITY_REJECTION_LOW_DET_SCORE: QualityRejection
QUALITY_REJECTION_OUT_OF_FRAME: QualityRejection

class FaceObservation(_message.Message):
    __slots__ = ("observation_id", "frame", "face_index", "faces_in_frame", "box", "landmarks", "det_score", "quality", "embedding", "model", "crop", "track_id", "detect_unix_ns", "embed_unix_ns", "secret")
    OBSERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    FACE_INDEX_FIELD_NUMBER: _ClassVar[int]
    FACES_IN_FRAME_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    DET_SCORE_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CROP_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    DETECT_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    EMBED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    observation_id: str
    frame: _common_pb2.FrameRef
    face_index: int
    faces_in_frame: int
    box: _common_pb2.BoundingBox
    landmarks: _common_pb2.Landmarks
    det_score: float
    quality: float
    embedding: _containers.RepeatedScalarFieldContainer[float]
    model: _common_pb2.ModelVersion
    crop: _common_pb2.Crop
    track_id: str
    detect_unix_ns: int
    embed_unix_ns: int
    secret: _common_pb2.Sealed
    def __init__(self, observation_id: _Optional[str] = ..., frame: _Optional[_Union[_common_pb2.FrameRef, _Mapping]] = ..., face_index: _Optional[int] = ..., faces_in_frame: _Optional[int] = ..., box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., landmarks: _Optional[_Union[_common_pb2.Landmarks, _Mapping]] = ..., det_score: _Optional[float] = ..., quality: _Optional[float] = ..., embedding: _Optional[_Iterable[float]] = ..., model: _Optional[_Union[_common_pb2.ModelVersion, _Mapping]] = ..., crop: _Optional[_Union[_common_pb2.Crop, _Mapping]] = ..., track_id: _Optional[str] = ..., detect_unix_ns: _Optional[int] = ..., embed_unix_ns: _Optional[int] = ..., secret: _Optional[_Union[_common_pb2.Sealed, _Mapping]] = ...) -> None: ...

class FaceSecret(_message.Message):
    __slots__ = ("embedding", "crop_jpeg", "crop_width", "crop_height")
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    CROP_JPEG_FIELD_NUMBER: _ClassVar[int]
    CROP_WIDTH_FIELD_NUMBER: _ClassVar[int]
    CROP_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    embedding: _containers.RepeatedScalarFieldContainer[float]
    crop_jpeg: bytes
    crop_width: int
    crop_height: int
    def __init__(self, embedding: _Optional[_Iterable[float]] = ..., crop_jpeg: _Optional[bytes] = ..., crop_width: _Optional[int] = ..., crop_height: _Optional[int] = ...) -> None: ...
