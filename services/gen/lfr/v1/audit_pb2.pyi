from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuditRecord(_message.Message):
    __slots__ = ("seq", "ts_unix_ns", "actor", "action", "deployment_id", "subject_ids", "subject_hashes", "details", "service", "key_id", "signature", "prev_hash", "hash")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TS_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_HASHES_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    seq: int
    ts_unix_ns: int
    actor: str
    action: str
    deployment_id: str
    subject_ids: _containers.RepeatedScalarFieldContainer[str]
    subject_hashes: _containers.RepeatedScalarFieldContainer[bytes]
    details: _containers.ScalarMap[str, str]
    service: str
    key_id: str
    signature: bytes
    prev_hash: bytes
    hash: bytes
    def __init__(self, seq: _Optional[int] = ..., ts_unix_ns: _Optional[int] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., deployment_id: _Optional[str] = ..., subject_ids: _Optional[_Iterable[str]] = ..., subject_hashes: _Optional[_Iterable[bytes]] = ..., details: _Optional[_Mapping[str, str]] = ..., service: _Optional[str] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ..., prev_hash: _Optional[bytes] = ..., hash: _Optional[bytes] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("offset", "record")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    offset: int
    record: AuditRecord
    def __init__(self, offset: _Optional[int] = ..., record: _Optional[_Union[AuditRecord, _Mapping]] = ...) -> None: ...

class TailAuditRequest(_message.Message):
    __slots__ = ("limit", "action_prefix", "deployment_id")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ACTION_PREFIX_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    limit: int
    action_prefix: str
    deployment_id: str
    def __init__(self, limit: _Optional[int] = ..., action_prefix: _Optional[str] = ..., deployment_id: _Optional[str] = ...) -> None: ...

class TailAuditResponse(_message.Message):
    __slots__ = ("entries", "end_offset")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    END_OFFSET_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    end_offset: int
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ..., end_offset: _Optional[int] = ...) -> None: ...

class VerifyAuditRequest(_message.Message):
    __slots__ = ("allow_empty",)
    ALLOW_EMPTY_FIELD_NUMBER: _ClassVar[int]
    allow_empty: bool
    def __init__(self, allow_empty: _Optional[bool] = ...) -> None: ...

class VerifyAuditResponse(_message.Message):
    __slots__ = ("ok", "records", "last_seq", "broken_offset", "broken_seq", "reason", "summary", "verified_unix_ns")
    OK_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    BROKEN_OFFSET_FIELD_NUMBER: _ClassVar[int]
    BROKEN_SEQ_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    records: int
    last_seq: int
    broken_offset: int
    broken_seq: int
    reason: str
    summary: str
    verified_unix_ns: int
    def __init__(self, ok: _Optional[bool] = ..., records: _Optional[int] = ..., last_seq: _Optional[int] = ..., broken_offset: _Optional[int] = ..., broken_seq: _Optional[int] = ..., reason: _Optional[str] = ..., summary: _Optional[str] = ..., verified_unix_ns: _Optional[int] = ...) -> None: ...
