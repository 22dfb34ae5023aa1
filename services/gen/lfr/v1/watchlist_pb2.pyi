from lfr.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchlistState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WATCHLIST_STATE_UNSPECIFIED: _ClassVar[WatchlistState]
    WATCHLIST_STATE_PENDING: _ClassVar[WatchlistState]
    WATCHLIST_STATE_ACTIVE: _ClassVar[WatchlistState]
    WATCHLIST_STATE_CLOSED: _ClassVar[WatchlistState]
    WATCHLIST_STATE_EXPIRED: _ClassVar[WatchlistState]

class EnrolRejection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENROL_REJECTION_UNSPECIFIED: _ClassVar[EnrolRejection]
    ENROL_REJECTION_NO_FACE: _ClassVar[EnrolRejection]
    ENROL_REJECTION_MULTIPLE_FACES: _ClassVar[EnrolRejection]
    ENROL_REJECTION_LOW_QUALITY: _ClassVar[EnrolRejection]
    ENROL_REJECTION_DECODE_ERROR: _ClassVar[EnrolRejection]
    ENROL_REJECTION_MISSING_SOURCE: _ClassVar[EnrolRejection]
WATCHLIST_STATE_UNSPECIFIED: WatchlistState
WATCHLIST_STATE_PENDING: WatchlistState
WATCHLIST_STATE_ACTIVE: WatchlistState
WATCHLIST_STATE_CLOSED: WatchlistState
WATCHLIST_STATE_EXPIRED: WatchlistState
ENROL_REJECTION_UNSPECIFIED: EnrolRejection
ENROL_REJECTION_NO_FACE: EnrolRejection
ENROL_REJECTION_MULTIPLE_FACES: EnrolRejection
ENROL_REJECTION_LOW_QUALITY: EnrolRejection
ENROL_REJECTION_DECODE_ERROR: EnrolRejection
ENROL_REJECTION_MISSING_SOURCE: EnrolRejection

class Watchlist(_message.Message):
    __slots__ = ("watchlist_id", "name", "deployment_id", "authorisation_ref", "authorising_officer", "purpose", "criteria", "valid_from_unix_ns", "valid_until_unix_ns", "state", "subject_count", "image_count", "created_unix_ns", "created_by", "closed_unix_ns", "close_reason", "embedder")
    WATCHLIST_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHORISATION_REF_FIELD_NUMBER: _ClassVar[int]
    AUTHORISING_OFFICER_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CRITERIA_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_COUNT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CLOSED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    CLOSE_REASON_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_FIELD_NUMBER: _ClassVar[int]
    watchlist_id: str
    name: str
    deployment_id: str
    authorisation_ref: str
    authorising_officer: str
    purpose: str
    criteria: str
    valid_from_unix_ns: int
    valid_until_unix_ns: int
    state: WatchlistState
    subject_count: int
    image_count: int
    created_unix_ns: int
    created_by: str
    closed_unix_ns: int
    close_reason: str
    embedder: str
    def __init__(self, watchlist_id: _Optional[str] = ..., name: _Optional[str] = ..., deployment_id: _Optional[str] = ..., authorisation_ref: _Optional[str] = ..., authorising_officer: _Optional[str] = ..., purpose: _Optional[str] = ..., criteria: _Optional[str] = ..., valid_from_unix_ns: _Optional[int] = ..., valid_until_unix_ns: _Optional[int] = ..., state: _Optional[_Union[WatchlistState, str]] = ..., subject_count: _Optional[int] = ..., image_count: _Optional[int] = ..., created_unix_ns: _Optional[int] = ..., created_by: _Optional[str] = ..., closed_unix_ns: _Optional[int] = ..., close_reason: _Optional[str] = ..., embedder: _Optional[str] = ...) -> None: ...

class Subject(_message.Message):
    __slots__ = ("subject_id", "category", "display_name", "image_count", "source_refs", "enrolled_unix_ns")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_REFS_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    category: _common_pb2.SubjectCategory
    display_name: str
    image_count: int
    source_refs: _containers.RepeatedScalarFieldContainer[str]
    enrolled_unix_ns: int
    def __init__(self, subject_id: _Optional[str] = ..., category: _Optional[_Union[_common_pb2.SubjectCategory, str]] = ..., display_name: _Optional[str] = ..., image_count: _Optional[int] = ..., source_refs: _Optional[_Iterable[str]] = ..., enrolled_unix_ns: _Optional[int] = ...) -> None: ...

class CreateWatchlistRequest(_message.Message):
    __slots__ = ("name", "deployment_id", "authorisation_ref", "authorising_officer", "purpose", "criteria", "valid_from_unix_ns", "valid_until_unix_ns", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHORISATION_REF_FIELD_NUMBER: _ClassVar[int]
    AUTHORISING_OFFICER_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CRITERIA_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    deployment_id: str
    authorisation_ref: str
    authorising_officer: str
    purpose: str
    criteria: str
    valid_from_unix_ns: int
    valid_until_unix_ns: int
    request_id: str
    def __init__(self, name: _Optional[str] = ..., deployment_id: _Optional[str] = ..., authorisation_ref: _Optional[str] = ..., authorising_officer: _Optional[str] = ..., purpose: _Optional[str] = ..., criteria: _Optional[str] = ..., valid_from_unix_ns: _Optional[int] = ..., valid_until_unix_ns: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateWatchlistResponse(_message.Message):
    __slots__ = ("watchlist",)
    WATCHLIST_FIELD_NUMBER: _ClassVar[int]
    watchlist: Watchlist
    def __init__(self, watchlist: _Optional[_Union[Watchlist, _Mapping]] = ...) -> None: ...

class EnrolImage(_message.Message):
    __slots__ = ("image", "source_ref", "image_id")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_REF_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    source_ref: str
    image_id: str
    def __init__(self, image: _Optional[bytes] = ..., source_ref: _Optional[str] = ..., image_id: _Optional[str] = ...) -> None: ...

class EnrolImageResult(_message.Message):
    __slots__ = ("index", "image_id", "accepted", "rejection", "face_count", "quality", "quality_detail", "detail")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    FACE_COUNT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    QUALITY_DETAIL_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    index: int
    image_id: str
    accepted: bool
    rejection: EnrolRejection
    face_count: int
    quality: float
    quality_detail: QualityDetail
    detail: str
    def __init__(self, index: _Optional[int] = ..., image_id: _Optional[str] = ..., accepted: _Optional[bool] = ..., rejection: _Optional[_Union[EnrolRejection, str]] = ..., face_count: _Optional[int] = ..., quality: _Optional[float] = ..., quality_detail: _Optional[_Union[QualityDetail, _Mapping]] = ..., detail: _Optional[str] = ...) -> None: ...

class QualityDetail(_message.Message):
    __slots__ = ("det_score", "face_size_px", "sharpness", "yaw_deg")
    DET_SCORE_FIELD_NUMBER: _ClassVar[int]
    FACE_SIZE_PX_FIELD_NUMBER: _ClassVar[int]
    SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    YAW_DEG_FIELD_NUMBER: _ClassVar[int]
    det_score: float
    face_size_px: float
    sharpness: float
    yaw_deg: float
    def __init__(self, det_score: _Optional[float] = ..., face_size_px: _Optional[float] = ..., sharpness: _Optional[float] = ..., yaw_deg: _Optional[float] = ...) -> None: ...

class EnrolSubjectRequest(_message.Message):
    __slots__ = ("watchlist_id", "subject_id", "category", "display_name", "images")
    WATCHLIST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    watchlist_id: str
    subject_id: str
    category: _common_pb2.SubjectCategory
    display_name: str
    images: _containers.RepeatedCompositeFieldContainer[EnrolImage]
    def __init__(self, watchlist_id: _Optional[str] = ..., subject_id: _Optional[str] = ..., category: _Optional[_Union[_common_pb2.SubjectCategory, str]] = ..., display_name: _Optional[str] = ..., images: _Optional[_Iterable[_Union[EnrolImage, _Mapping]]] = ...) -> None: ...

class EnrolSubjectResponse(_message.Message):
    __slots__ = ("subject", "results")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    subject: Subject
    results: _containers.RepeatedCompositeFieldContainer[EnrolImageResult]
    def __init__(self, subject: _Optional[_Union[Subject, _Mapping]] = ..., results: _Optional[_Iterable[_Union[EnrolImageResult, _Mapping]]] = ...) -> None: ...

class RemoveSubjectRequest(_message.Message):
    __slots__ = ("watchlist_id", "subject_id", "reason")
    WATCHLIST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    watchlist_id: str
    subject_id: str
    reason: str
    def __init__(self, watchlist_id: _Optional[str] = ..., subject_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RemoveSubjectResponse(_message.Message):
    __slots__ = ("vectors_deleted",)
    VECTORS_DELETED_FIELD_NUMBER: _ClassVar[int]
    vectors_deleted: int
    def __init__(self, vectors_deleted: _Optional[int] = ...) -> None: ...

class ListWatchlistsRequest(_message.Message):
    __slots__ = ("deployment_id", "include_closed", "page_size", "page_token")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CLOSED_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    include_closed: bool
    page_size: int
    page_token: str
    def __init__(self, deployment_id: _Optional[str] = ..., include_closed: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWatchlistsResponse(_message.Message):
    __slots__ = ("watchlists", "next_page_token")
    WATCHLISTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    watchlists: _containers.RepeatedCompositeFieldContainer[Watchlist]
    next_page_token: str
    def __init__(self, watchlists: _Optional[_Iterable[_Union[Watchlist, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetWatchlistRequest(_message.Message):
    __slots__ = ("watchlist_id", "include_subjects")
    WATCHLIST_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    watchlist_id: str
    include_subjects: bool
    def __init__(self, watchlist_id: _Optional[str] = ..., include_subjects: _Optional[bool] = ...) -> None: ...

class GetWatchlistResponse(_message.Message):
    __slots__ = ("watchlist", "subjects")
    WATCHLIST_FIELD_NUMBER: _ClassVar[int]
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    watchlist: Watchlist
    subjects: _containers.RepeatedCompositeFieldContainer[Subject]
    def __init__(self, watchlist: _Optional[_Union[Watchlist, _Mapping]] = ..., subjects: _Optional[_Iterable[_Union[Subject, _Mapping]]] = ...) -> None: ...

class CloseWatchlistRequest(_message.Message):
    __slots__ = ("watchlist_id", "reason")
    WATCHLIST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    watchlist_id: str
    reason: str
    def __init__(self, watchlist_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CloseWatchlistResponse(_message.Message):
    __slots__ = ("watchlist", "subjects_deleted", "vectors_deleted")
    WATCHLIST_FIELD_NUMBER: _ClassVar[int]
    SUBJECTS_DELETED_FIELD_NUMBER: _ClassVar[int]
    VECTORS_DELETED_FIELD_NUMBER: _ClassVar[int]
    watchlist: Watchlist
    subjects_deleted: int
    vectors_deleted: int
    def __init__(self, watchlist: _Optional[_Union[Watchlist, _Mapping]] = ..., subjects_deleted: _Optional[int] = ..., vectors_deleted: _Optional[int] = ...) -> None: ...

class ReembedWatchlistRequest(_message.Message):
    __slots__ = ("watchlist_id", "reason")
    WATCHLIST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    watchlist_id: str
    reason: str
    def __init__(self, watchlist_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReembedWatchlistResponse(_message.Message):
    __slots__ = ("watchlist", "from_embedder", "to_embedder", "subjects", "vectors")
    WATCHLIST_FIELD_NUMBER: _ClassVar[int]
    FROM_EMBEDDER_FIELD_NUMBER: _ClassVar[int]
    TO_EMBEDDER_FIELD_NUMBER: _ClassVar[int]
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    watchlist: Watchlist
    from_embedder: str
    to_embedder: str
    subjects: int
    vectors: int
    def __init__(self, watchlist: _Optional[_Union[Watchlist, _Mapping]] = ..., from_embedder: _Optional[str] = ..., to_embedder: _Optional[str] = ..., subjects: _Optional[int] = ..., vectors: _Optional[int] = ...) -> None: ...

class SyntheticSubject(_message.Message):
    __slots__ = ("subject_id", "category", "embedding", "source_ref")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    SOURCE_REF_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    category: _common_pb2.SubjectCategory
    embedding: _containers.RepeatedScalarFieldContainer[float]
    source_ref: str
    def __init__(self, subject_id: _Optional[str] = ..., category: _Optional[_Union[_common_pb2.SubjectCategory, str]] = ..., embedding: _Optional[_Iterable[float]] = ..., source_ref: _Optional[str] = ...) -> None: ...

class BulkImportRequest(_message.Message):
    __slots__ = ("watchlist_id", "subjects")
    WATCHLIST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    watchlist_id: str
    subjects: _containers.RepeatedCompositeFieldContainer[SyntheticSubject]
    def __init__(self, watchlist_id: _Optional[str] = ..., subjects: _Optional[_Iterable[_Union[SyntheticSubject, _Mapping]]] = ...) -> None: ...

class BulkImportResponse(_message.Message):
    __slots__ = ("imported", "rejected", "errors")
    IMPORTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    imported: int
    rejected: int
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, imported: _Optional[int] = ..., rejected: _Optional[int] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...
