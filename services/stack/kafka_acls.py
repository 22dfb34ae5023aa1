"""The per-service Kafka ACLs (services.common.acls, THE table) on the local broker.

The local broker runs the StandardAuthorizer with ``super.users=User:ANONYMOUS`` (the open
PLAINTEXT listener 9092 and the controller listener keep full rights, so the rest of the local
stack and the tests are unaffected) and ``allow.everyone.if.no.acl.found=true``: on the SCRAM
listener 9094 every service user is held to the table on the platform's topics and consumer
groups (all of which carry ACLs), while resources nobody declared (a test's private topics) stay
open. Production is stricter (no ANONYMOUS, default deny: k8s/overlays/prod, deploy/kafka).

The ACLs are created with CreateAcls (API key 30) over the PLAINTEXT listener on every
``lfr stack up`` of Kafka; creating an existing ACL is a no-op, so this is an upsert.
"""

from __future__ import annotations

from typing import TypeAlias

from aiokafka.protocol.admin import CreateAclsRequestStruct
from aiokafka.protocol.api import Request

from services.common.acls import ACLS, ServiceAcl

# org.apache.kafka.common.resource.ResourceType / PatternType, acl.AclOperation / AclPermissionType
RESOURCE_TYPE = {"topic": 2, "group": 3}
PATTERN_LITERAL = 3
OPERATION = {"Read": 3, "Write": 4, "Describe": 8}
PERMISSION_ALLOW = 3
SECURITY_DISABLED = 54  # the broker has no authorizer

Creation: TypeAlias = tuple[int, str, int, str, str, int, int]


def creations(acls: tuple[ServiceAcl, ...] = ACLS) -> list[Creation]:
    """One (resource type, name, pattern, principal, host, operation, permission) per allowed operation."""
    out: list[Creation] = []
    for acl in acls:
        for rule in acl.rules():
            for op in rule.operations:
                out.append((RESOURCE_TYPE[rule.resource_type], rule.name, PATTERN_LITERAL, acl.principal, "*",
                            OPERATION[op], PERMISSION_ALLOW))
    return out


class CreateAclsBatch(Request[CreateAclsRequestStruct]):
    """CreateAcls with many creations in one request (aiokafka's own sends one)."""

    API_KEY = 30

    def __init__(self, items: list[Creation]) -> None:
        self._items = items

    def build(self, request_struct_class: type[CreateAclsRequestStruct]) -> CreateAclsRequestStruct:
        if request_struct_class.API_VERSION < 1:  # v0 has no pattern type (literal only)
            return request_struct_class([(t, n, p, h, o, perm) for t, n, _, p, h, o, perm in self._items])
        return request_struct_class(self._items)


class AclError(RuntimeError):
    """The broker refused to create an ACL."""


async def ensure_acls(bootstrap: str, timeout_s: float = 15.0) -> int | None:
    """Create every ACL of the table; the number of ACLs, or None when the broker has no
    authorizer (a broker started before ACLs were enabled: restart it)."""
    from services.stack.kafka_scram import admin_request

    items = creations()
    response = await admin_request(bootstrap, CreateAclsBatch(items), "lfr-acl-setup", timeout_s)
    codes = [(r[0], r[1]) for r in response.creation_responses]
    if codes and all(code == SECURITY_DISABLED for code, _ in codes):
        return None
    failed = [f"{items[i][3]} {items[i][1]}: error {code} {msg or ''}".strip()
              for i, (code, msg) in enumerate(codes) if code != 0]
    if failed:
        raise AclError("; ".join(failed[:5]))
    return len(items)
