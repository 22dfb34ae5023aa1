from lfr.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Alert(_message.Message):
    __slots__ = ("alert_id", "subject_id", "subject_category", "watchlist_id", "deployment_id", "camera_id", "zone", "best_score", "threshold", "match_count", "best_observation_id", "best_box", "first_seen_unix_ns", "last_seen_unix_ns", "capture_unix_ns", "alert_unix_ns", "live_crop", "watchlist_image")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    WATCHLIST_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    BEST_SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MATCH_COUNT_FIELD_NUMBER: _ClassVar[int]
    BEST_OBSERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    BEST_BOX_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    ALERT_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    LIVE_CROP_FIELD_NUMBER: _ClassVar[int]
    WATCHLIST_IMAGE_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    subject_id: str
    subject_category: _common_pb2.SubjectCategory
    watchlist_id: str
    deployment_id: str
    camera_id: str
    zone: str
    best_score: float
    threshold: float
    match_count: int
    best_observation_id: str
    best_box: _common_pb2.BoundingBox
    first_seen_unix_ns: int
    last_seen_unix_ns: int
    capture_unix_ns: int
    alert_unix_ns: int
    live_crop: _common_pb2.Crop
    watchlist_image: _common_pb2.ImageRef
    def __init__(self, alert_id: _Optional[str] = ..., subject_id: _Optional[str] = ..., subject_category: _Optional[_Union[_common_pb2.SubjectCategory, str]] = ..., watchlist_id: _Optional[str] = ..., deployment_id: _Optional[str] = ..., camera_id: _Optional[str] = ..., zone: _Optional[str] = ..., best_score: _Optional[float] = ..., threshold: _Optional[float] = ..., match_count: _Optional[int] = ..., best_observation_id: _Optional[str] = ..., best_box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., first_seen_unix_ns: _Optional[int] = ..., last_seen_unix_ns: _Optional[int] = ..., capture_unix_ns: _Optional[int] = ..., alert_unix_ns: _Optional[int] = ..., live_crop: _Optional[_Union[_common_pb2.Crop, _Mapping]] = ..., watchlist_image: _Optional[_Union[_common_pb2.ImageRef, _Mapping]] = ...) -> None: ...

class StreamAlertsRequest(_message.Message):
    __slots__ = ("zones", "camera_ids", "deployment_id")
    ZONES_FIELD_NUMBER: _ClassVar[int]
    CAMERA_IDS_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    zones: _containers.RepeatedScalarFieldContainer[str]
    camera_ids: _containers.RepeatedScalarFieldContainer[str]
    deployment_id: str
    def __init__(self, zones: _Optional[_Iterable[str]] = ..., camera_ids: _Optional[_Iterable[str]] = ..., deployment_id: _Optional[str] = ...) -> None: ...
