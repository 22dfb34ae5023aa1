from lfr.v1 import alerts_pb2 as _alerts_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OfficerStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OFFICER_STATUS_UNSPECIFIED: _ClassVar[OfficerStatus]
    OFFICER_STATUS_AVAILABLE: _ClassVar[OfficerStatus]
    OFFICER_STATUS_BUSY: _ClassVar[OfficerStatus]
    OFFICER_STATUS_OFF_DUTY: _ClassVar[OfficerStatus]

class AdjudicationOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADJUDICATION_OUTCOME_UNSPECIFIED: _ClassVar[AdjudicationOutcome]
    ADJUDICATION_OUTCOME_CONFIRMED: _ClassVar[AdjudicationOutcome]
    ADJUDICATION_OUTCOME_REJECTED: _ClassVar[AdjudicationOutcome]
    ADJUDICATION_OUTCOME_NO_ACTION: _ClassVar[AdjudicationOutcome]

class AlertState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_STATE_UNSPECIFIED: _ClassVar[AlertState]
    ALERT_STATE_PENDING: _ClassVar[AlertState]
    ALERT_STATE_ACKNOWLEDGED: _ClassVar[AlertState]
    ALERT_STATE_AWAITING_SECOND: _ClassVar[AlertState]
    ALERT_STATE_ADJUDICATED: _ClassVar[AlertState]
    ALERT_STATE_UNREACHABLE: _ClassVar[AlertState]
OFFICER_STATUS_UNSPECIFIED: OfficerStatus
OFFICER_STATUS_AVAILABLE: OfficerStatus
OFFICER_STATUS_BUSY: OfficerStatus
OFFICER_STATUS_OFF_DUTY: OfficerStatus
ADJUDICATION_OUTCOME_UNSPECIFIED: AdjudicationOutcome
ADJUDICATION_OUTCOME_CONFIRMED: AdjudicationOutcome
ADJUDICATION_OUTCOME_REJECTED: AdjudicationOutcome
ADJUDICATION_OUTCOME_NO_ACTION: AdjudicationOutcome
ALERT_STATE_UNSPECIFIED: AlertState
ALERT_STATE_PENDING: AlertState
ALERT_STATE_ACKNOWLEDGED: AlertState
ALERT_STATE_AWAITING_SECOND: AlertState
ALERT_STATE_ADJUDICATED: AlertState
ALERT_STATE_UNREACHABLE: AlertState

class GeoLocation(_message.Message):
    __slots__ = ("latitude", "longitude", "accuracy_m")
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_M_FIELD_NUMBER: _ClassVar[int]
    latitude: float
    longitude: float
    accuracy_m: float
    def __init__(self, latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., accuracy_m: _Optional[float] = ...) -> None: ...

class OfficerState(_message.Message):
    __slots__ = ("officer_id", "zones", "device_id", "status", "location", "last_heartbeat_unix_ns", "expires_unix_ns", "supervisor")
    OFFICER_ID_FIELD_NUMBER: _ClassVar[int]
    ZONES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    SUPERVISOR_FIELD_NUMBER: _ClassVar[int]
    officer_id: str
    zones: _containers.RepeatedScalarFieldContainer[str]
    device_id: str
    status: OfficerStatus
    location: GeoLocation
    last_heartbeat_unix_ns: int
    expires_unix_ns: int
    supervisor: bool
    def __init__(self, officer_id: _Optional[str] = ..., zones: _Optional[_Iterable[str]] = ..., device_id: _Optional[str] = ..., status: _Optional[_Union[OfficerStatus, str]] = ..., location: _Optional[_Union[GeoLocation, _Mapping]] = ..., last_heartbeat_unix_ns: _Optional[int] = ..., expires_unix_ns: _Optional[int] = ..., supervisor: _Optional[bool] = ...) -> None: ...

class GoOnDutyRequest(_message.Message):
    __slots__ = ("officer_id", "zones", "device_id", "location", "supervisor")
    OFFICER_ID_FIELD_NUMBER: _ClassVar[int]
    ZONES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    SUPERVISOR_FIELD_NUMBER: _ClassVar[int]
    officer_id: str
    zones: _containers.RepeatedScalarFieldContainer[str]
    device_id: str
    location: GeoLocation
    supervisor: bool
    def __init__(self, officer_id: _Optional[str] = ..., zones: _Optional[_Iterable[str]] = ..., device_id: _Optional[str] = ..., location: _Optional[_Union[GeoLocation, _Mapping]] = ..., supervisor: _Optional[bool] = ...) -> None: ...

class GoOnDutyResponse(_message.Message):
    __slots__ = ("state", "heartbeat_ttl_s")
    STATE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TTL_S_FIELD_NUMBER: _ClassVar[int]
    state: OfficerState
    heartbeat_ttl_s: int
    def __init__(self, state: _Optional[_Union[OfficerState, _Mapping]] = ..., heartbeat_ttl_s: _Optional[int] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("officer_id", "location", "zones")
    OFFICER_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    ZONES_FIELD_NUMBER: _ClassVar[int]
    officer_id: str
    location: GeoLocation
    zones: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, officer_id: _Optional[str] = ..., location: _Optional[_Union[GeoLocation, _Mapping]] = ..., zones: _Optional[_Iterable[str]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("state", "heartbeat_ttl_s")
    STATE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TTL_S_FIELD_NUMBER: _ClassVar[int]
    state: OfficerState
    heartbeat_ttl_s: int
    def __init__(self, state: _Optional[_Union[OfficerState, _Mapping]] = ..., heartbeat_ttl_s: _Optional[int] = ...) -> None: ...

class SetStatusRequest(_message.Message):
    __slots__ = ("officer_id", "status")
    OFFICER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    officer_id: str
    status: OfficerStatus
    def __init__(self, officer_id: _Optional[str] = ..., status: _Optional[_Union[OfficerStatus, str]] = ...) -> None: ...

class SetStatusResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: OfficerState
    def __init__(self, state: _Optional[_Union[OfficerState, _Mapping]] = ...) -> None: ...

class GoOffDutyRequest(_message.Message):
    __slots__ = ("officer_id",)
    OFFICER_ID_FIELD_NUMBER: _ClassVar[int]
    officer_id: str
    def __init__(self, officer_id: _Optional[str] = ...) -> None: ...

class GoOffDutyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListOfficersRequest(_message.Message):
    __slots__ = ("zone",)
    ZONE_FIELD_NUMBER: _ClassVar[int]
    zone: str
    def __init__(self, zone: _Optional[str] = ...) -> None: ...

class ListOfficersResponse(_message.Message):
    __slots__ = ("officers",)
    OFFICERS_FIELD_NUMBER: _ClassVar[int]
    officers: _containers.RepeatedCompositeFieldContainer[OfficerState]
    def __init__(self, officers: _Optional[_Iterable[_Union[OfficerState, _Mapping]]] = ...) -> None: ...

class ZoneAssignment(_message.Message):
    __slots__ = ("officer_id", "zone", "expires_unix_ns", "assigned_unix_ns", "assigned_by")
    OFFICER_ID_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_BY_FIELD_NUMBER: _ClassVar[int]
    officer_id: str
    zone: str
    expires_unix_ns: int
    assigned_unix_ns: int
    assigned_by: str
    def __init__(self, officer_id: _Optional[str] = ..., zone: _Optional[str] = ..., expires_unix_ns: _Optional[int] = ..., assigned_unix_ns: _Optional[int] = ..., assigned_by: _Optional[str] = ...) -> None: ...

class AssignZonesRequest(_message.Message):
    __slots__ = ("officer_id", "zones", "duration_s")
    OFFICER_ID_FIELD_NUMBER: _ClassVar[int]
    ZONES_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    officer_id: str
    zones: _containers.RepeatedScalarFieldContainer[str]
    duration_s: int
    def __init__(self, officer_id: _Optional[str] = ..., zones: _Optional[_Iterable[str]] = ..., duration_s: _Optional[int] = ...) -> None: ...

class AssignZonesResponse(_message.Message):
    __slots__ = ("assignments",)
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    assignments: _containers.RepeatedCompositeFieldContainer[ZoneAssignment]
    def __init__(self, assignments: _Optional[_Iterable[_Union[ZoneAssignment, _Mapping]]] = ...) -> None: ...

class ListAssignmentsRequest(_message.Message):
    __slots__ = ("officer_id",)
    OFFICER_ID_FIELD_NUMBER: _ClassVar[int]
    officer_id: str
    def __init__(self, officer_id: _Optional[str] = ...) -> None: ...

class ListAssignmentsResponse(_message.Message):
    __slots__ = ("assignments",)
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    assignments: _containers.RepeatedCompositeFieldContainer[ZoneAssignment]
    def __init__(self, assignments: _Optional[_Iterable[_Union[ZoneAssignment, _Mapping]]] = ...) -> None: ...

class RevokeAssignmentRequest(_message.Message):
    __slots__ = ("officer_id", "zones")
    OFFICER_ID_FIELD_NUMBER: _ClassVar[int]
    ZONES_FIELD_NUMBER: _ClassVar[int]
    officer_id: str
    zones: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, officer_id: _Optional[str] = ..., zones: _Optional[_Iterable[str]] = ...) -> None: ...

class RevokeAssignmentResponse(_message.Message):
    __slots__ = ("zones",)
    ZONES_FIELD_NUMBER: _ClassVar[int]
    zones: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, zones: _Optional[_Iterable[str]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("device_id", "officer_id")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFICER_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    officer_id: str
    def __init__(self, device_id: _Optional[str] = ..., officer_id: _Optional[str] = ...) -> None: ...

class DeviceAlert(_message.Message):
    __slots__ = ("delivery_id", "alert", "escalation_level", "ack_deadline_unix_ns", "two_person_confirmation", "state", "retention_until_unix_ns")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    ACK_DEADLINE_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    TWO_PERSON_CONFIRMATION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RETENTION_UNTIL_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    alert: _alerts_pb2.Alert
    escalation_level: int
    ack_deadline_unix_ns: int
    two_person_confirmation: bool
    state: AlertState
    retention_until_unix_ns: int
    def __init__(self, delivery_id: _Optional[str] = ..., alert: _Optional[_Union[_alerts_pb2.Alert, _Mapping]] = ..., escalation_level: _Optional[int] = ..., ack_deadline_unix_ns: _Optional[int] = ..., two_person_confirmation: _Optional[bool] = ..., state: _Optional[_Union[AlertState, str]] = ..., retention_until_unix_ns: _Optional[int] = ...) -> None: ...

class AcknowledgeRequest(_message.Message):
    __slots__ = ("alert_id", "officer_id", "device_id")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFICER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    officer_id: str
    device_id: str
    def __init__(self, alert_id: _Optional[str] = ..., officer_id: _Optional[str] = ..., device_id: _Optional[str] = ...) -> None: ...

class AcknowledgeResponse(_message.Message):
    __slots__ = ("first",)
    FIRST_FIELD_NUMBER: _ClassVar[int]
    first: bool
    def __init__(self, first: _Optional[bool] = ...) -> None: ...

class AdjudicateRequest(_message.Message):
    __slots__ = ("alert_id", "officer_id", "outcome", "note", "case_ref")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFICER_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    CASE_REF_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    officer_id: str
    outcome: AdjudicationOutcome
    note: str
    case_ref: str
    def __init__(self, alert_id: _Optional[str] = ..., officer_id: _Optional[str] = ..., outcome: _Optional[_Union[AdjudicationOutcome, str]] = ..., note: _Optional[str] = ..., case_ref: _Optional[str] = ...) -> None: ...

class AdjudicateResponse(_message.Message):
    __slots__ = ("state", "final_outcome", "confirmed_by", "kept")
    STATE_FIELD_NUMBER: _ClassVar[int]
    FINAL_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_BY_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    state: AlertState
    final_outcome: AdjudicationOutcome
    confirmed_by: _containers.RepeatedScalarFieldContainer[str]
    kept: bool
    def __init__(self, state: _Optional[_Union[AlertState, str]] = ..., final_outcome: _Optional[_Union[AdjudicationOutcome, str]] = ..., confirmed_by: _Optional[_Iterable[str]] = ..., kept: _Optional[bool] = ...) -> None: ...

class GetAlertRequest(_message.Message):
    __slots__ = ("alert_id",)
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    def __init__(self, alert_id: _Optional[str] = ...) -> None: ...

class AlertStatus(_message.Message):
    __slots__ = ("alert_id", "state", "outcome", "escalation_level", "notified_officers", "devices", "acknowledged_by", "confirmed_by", "two_person_confirmation", "kept", "case_ref", "retention_until_unix_ns", "zone", "camera_id", "subject_id")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    NOTIFIED_OFFICERS_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_BY_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_BY_FIELD_NUMBER: _ClassVar[int]
    TWO_PERSON_CONFIRMATION_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    CASE_REF_FIELD_NUMBER: _ClassVar[int]
    RETENTION_UNTIL_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    state: AlertState
    outcome: AdjudicationOutcome
    escalation_level: int
    notified_officers: _containers.RepeatedScalarFieldContainer[str]
    devices: _containers.RepeatedScalarFieldContainer[str]
    acknowledged_by: str
    confirmed_by: _containers.RepeatedScalarFieldContainer[str]
    two_person_confirmation: bool
    kept: bool
    case_ref: str
    retention_until_unix_ns: int
    zone: str
    camera_id: str
    subject_id: str
    def __init__(self, alert_id: _Optional[str] = ..., state: _Optional[_Union[AlertState, str]] = ..., outcome: _Optional[_Union[AdjudicationOutcome, str]] = ..., escalation_level: _Optional[int] = ..., notified_officers: _Optional[_Iterable[str]] = ..., devices: _Optional[_Iterable[str]] = ..., acknowledged_by: _Optional[str] = ..., confirmed_by: _Optional[_Iterable[str]] = ..., two_person_confirmation: _Optional[bool] = ..., kept: _Optional[bool] = ..., case_ref: _Optional[str] = ..., retention_until_unix_ns: _Optional[int] = ..., zone: _Optional[str] = ..., camera_id: _Optional[str] = ..., subject_id: _Optional[str] = ...) -> None: ...

class RegisterDeviceRequest(_message.Message):
    __slots__ = ("device_id", "officer_id")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFICER_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    officer_id: str
    def __init__(self, device_id: _Optional[str] = ..., officer_id: _Optional[str] = ...) -> None: ...

class DeviceRegistration(_message.Message):
    __slots__ = ("device_id", "officer_id", "registered_by", "registered_unix_ns")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFICER_ID_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_BY_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    officer_id: str
    registered_by: str
    registered_unix_ns: int
    def __init__(self, device_id: _Optional[str] = ..., officer_id: _Optional[str] = ..., registered_by: _Optional[str] = ..., registered_unix_ns: _Optional[int] = ...) -> None: ...

class UnregisterDeviceRequest(_message.Message):
    __slots__ = ("device_id",)
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    def __init__(self, device_id: _Optional[str] = ...) -> None: ...

class UnregisterDeviceResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: DeviceRegistration
    def __init__(self, removed: _Optional[_Union[DeviceRegistration, _Mapping]] = ...) -> None: ...
