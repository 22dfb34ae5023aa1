from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PayloadProtection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYLOAD_PROTECTION_UNSPECIFIED: _ClassVar[PayloadProtection]
    PAYLOAD_PROTECTION_PLAINTEXT: _ClassVar[PayloadProtection]
    PAYLOAD_PROTECTION_AES256_GCM_EPHEMERAL_KEY: _ClassVar[PayloadProtection]

class SubjectCategory(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBJECT_CATEGORY_UNSPECIFIED: _ClassVar[SubjectCategory]
    SUBJECT_CATEGORY_WANTED: _ClassVar[SubjectCategory]
    SUBJECT_CATEGORY_MISSING: _ClassVar[SubjectCategory]
    SUBJECT_CATEGORY_AT_RISK: _ClassVar[SubjectCategory]
PAYLOAD_PROTECTION_UNSPECIFIED: PayloadProtection
PAYLOAD_PROTECTION_PLAINTEXT: PayloadProtection
PAYLOAD_PROTECTION_AES256_GCM_EPHEMERAL_KEY: PayloadProtection
SUBJECT_CATEGORY_UNSPECIFIED: SubjectCategory
SUBJECT_CATEGORY_WANTED: SubjectCategory
SUBJECT_CATEGORY_MISSING: SubjectCategory
SUBJECT_CATEGORY_AT_RISK: SubjectCategory

class BoundingBox(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class Landmarks(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[Point]
    def __init__(self, points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ...) -> None: ...

class FrameRef(_message.Message):
    __slots__ = ("camera_id", "zone", "deployment_id", "seq", "capture_unix_ns")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    zone: str
    deployment_id: str
    seq: int
    capture_unix_ns: int
    def __init__(self, camera_id: _Optional[str] = ..., zone: _Optional[str] = ..., deployment_id: _Optional[str] = ..., seq: _Optional[int] = ..., capture_unix_ns: _Optional[int] = ...) -> None: ...

class Crop(_message.Message):
    __slots__ = ("jpeg", "protection", "key_id", "nonce", "width", "height")
    JPEG_FIELD_NUMBER: _ClassVar[int]
    PROTECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    jpeg: bytes
    protection: PayloadProtection
    key_id: str
    nonce: bytes
    width: int
    height: int
    def __init__(self, jpeg: _Optional[bytes] = ..., protection: _Optional[_Union[PayloadProtection, str]] = ..., key_id: _Optional[str] = ..., nonce: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class ImageRef(_message.Message):
    __slots__ = ("watchlist_id", "subject_id", "image_id", "source_ref", "jpeg")
    WATCHLIST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_REF_FIELD_NUMBER: _ClassVar[int]
    JPEG_FIELD_NUMBER: _ClassVar[int]
    watchlist_id: str
    subject_id: str
    image_id: str
    source_ref: str
    jpeg: bytes
    def __init__(self, watchlist_id: _Optional[str] = ..., subject_id: _Optional[str] = ..., image_id: _Optional[str] = ..., source_ref: _Optional[str] = ..., jpeg: _Optional[bytes] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("detector", "embedder")
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_FIELD_NUMBER: _ClassVar[int]
    detector: str
    embedder: str
    def __init__(self, detector: _Optional[str] = ..., embedder: _Optional[str] = ...) -> None: ...

class Sealed(_message.Message):
    __slots__ = ("ciphertext", "protection", "key_id", "nonce")
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    PROTECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    ciphertext: bytes
    protection: PayloadProtection
    key_id: str
    nonce: bytes
    def __init__(self, ciphertext: _Optional[bytes] = ..., protection: _Optional[_Union[PayloadProtection, str]] = ..., key_id: _Optional[str] = ..., nonce: _Optional[bytes] = ...) -> None: ...
