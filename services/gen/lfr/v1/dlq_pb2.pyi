from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeadLetterReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEAD_LETTER_REASON_UNSPECIFIED: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_DECODE_ERROR: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_CORRUPT_IMAGE: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_UNKNOWN_CAMERA: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_OVERSIZED: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_INVALID_FIELD: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_STALE: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_UNKNOWN_WATCHLIST: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_KEY_EXPIRED: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_UNSEALED: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_INTERNAL: _ClassVar[DeadLetterReason]
DEAD_LETTER_REASON_UNSPECIFIED: DeadLetterReason
DEAD_LETTER_REASON_DECODE_ERROR: DeadLetterReason
DEAD_LETTER_REASON_CORRUPT_IMAGE: DeadLetterReason
DEAD_LETTER_REASON_UNKNOWN_CAMERA: DeadLetterReason
DEAD_LETTER_REASON_OVERSIZED: DeadLetterReason
DEAD_LETTER_REASON_INVALID_FIELD: DeadLetterReason
DEAD_LETTER_REASON_STALE: DeadLetterReason
DEAD_LETTER_REASON_UNKNOWN_WATCHLIST: DeadLetterReason
DEAD_LETTER_REASON_KEY_EXPIRED: DeadLetterReason
DEAD_LETTER_REASON_UNSEALED: DeadLetterReason
DEAD_LETTER_REASON_INTERNAL: DeadLetterReason

class DeadLetter(_message.Message):
    __slots__ = ("source_topic", "source_partition", "source_offset", "source_key", "source_timestamp_unix_ns", "reason", "detail", "service", "instance", "dead_letter_unix_ns", "payload", "payload_size", "payload_truncated", "payload_dropped")
    SOURCE_TOPIC_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PARTITION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_KEY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TIMESTAMP_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_DROPPED_FIELD_NUMBER: _ClassVar[int]
    source_topic: str
    source_partition: int
    source_offset: int
    source_key: bytes
    source_timestamp_unix_ns: int
    reason: DeadLetterReason
    detail: str
    service: str
    instance: str
    dead_letter_unix_ns: int
    payload: bytes
    payload_size: int
    payload_truncated: bool
    payload_dropped: bool
    def __init__(self, source_topic: _Optional[str] = ..., source_partition: _Optional[int] = ..., source_offset: _Optional[int] = ..., source_key: _Optional[bytes] = ..., source_timestamp_unix_ns: _Optional[int] = ..., reason: _Optional[_Union[DeadLetterReason, str]] = ..., detail: _Optional[str] = ..., service: _Optional[str] = ..., instance: _Optional[str] = ..., dead_letter_unix_ns: _Optional[int] = ..., payload: _Optional[bytes] = ..., payload_size: _Optional[int] = ..., payload_truncated: _Optional[bool] = ..., payload_dropped: _Optional[bool] = ...) -> None: ...
