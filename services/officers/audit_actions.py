"""The audit actions the officers service records (hash-chained ``lfr.audit.v1``): the worker's routing,
escalation and purge, and the API's duty, roster, device and adjudication calls."""

from __future__ import annotations

OFFICER_ON_DUTY = "officer.on_duty"
OFFICER_OFF_DUTY = "officer.off_duty"
OFFICER_STATUS = "officer.status"
ALERT_ROUTE = "alert.route"
ALERT_ESCALATE = "alert.escalate"
ALERT_UNREACHABLE = "alert.unreachable"
ALERT_ACKNOWLEDGE = "alert.acknowledge"
ALERT_ADJUDICATE = "alert.adjudicate"
ALERT_KEEP = "alert.keep"
ALERT_PURGE = "alert.purge"
OFFICER_ASSIGN = "officer.assign"
OFFICER_UNASSIGN = "officer.unassign"
DEVICE_REGISTER = "device.register"
DEVICE_UNREGISTER = "device.unregister"
