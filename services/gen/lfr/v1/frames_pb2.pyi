from lfr.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FrameEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRAME_ENCODING_UNSPECIFIED: _ClassVar[FrameEncoding]
    FRAME_ENCODING_JPEG: _ClassVar[FrameEncoding]
FRAME_ENCODING_UNSPECIFIED: FrameEncoding
FRAME_ENCODING_JPEG: FrameEncoding

class Frame(_message.Message):
    __slots__ = ("camera_id", "zone", "deployment_id", "seq", "capture_unix_ns", "publish_unix_ns", "image", "width", "height", "encoding", "protection", "key_id", "nonce")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    PROTECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    zone: str
    deployment_id: str
    seq: int
    capture_unix_ns: int
    publish_unix_ns: int
    image: bytes
    width: int
    height: int
    encoding: FrameEncoding
    protection: _common_pb2.PayloadProtection
    key_id: str
    nonce: bytes
    def __init__(self, camera_id: _Optional[str] = ..., zone: _Optional[str] = ..., deployment_id: _Optional[str] = ..., seq: _Optional[int] = ..., capture_unix_ns: _Optional[int] = ..., publish_unix_ns: _Optional[int] = ..., image: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., encoding: _Optional[_Union[FrameEncoding, str]] = ..., protection: _Optional[_Union[_common_pb2.PayloadProtection, str]] = ..., key_id: _Optional[str] = ..., nonce: _Optional[bytes] = ...) -> None: ...
