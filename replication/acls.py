"""Kafka's ACL model, pure: bindings, filters and the authorization decision.

An ACL binding is a resource pattern (resource type, name, LITERAL or PREFIXED) and an
entry (principal, host, operation, ALLOW or DENY). The codes are Kafka's wire codes
(``AclOperation``, ``ResourceType``, ``PatternType``, ``AclPermissionType``), so request
fields map onto them unchanged, and bindings are stored in the metadata log as
``AccessControlEntryRecord`` (see replication.metadata).

The decision (``decide``) follows Kafka's StandardAuthorizer:

- a super user is allowed everything;
- a DENY binding that matches the resource, principal, host and operation (or ALL)
  wins over any ALLOW;
- an ALLOW binding matches its own operation, ALL, and the implied ones: READ, WRITE,
  DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS (a DENY never
  implies: denying READ leaves DESCRIBE as it was);
- no ALLOW: denied, unless no binding at all matches the resource and
  allow.everyone.if.no.acl.found is true.

A binding matches a resource when its pattern is LITERAL with the same name or the
wildcard ``*``, or PREFIXED with a prefix of the name; a principal when equal or
``User:*``; a host when equal or ``*``.
"""

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class ResourceType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1  # filters only: either pattern type, name compared exactly
    MATCH = 2  # filters only: every binding that would apply to the named resource
    LITERAL = 3
    PREFIXED = 4


class AclOperation(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14
    TWO_PHASE_COMMIT = 15


class PermissionType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


Op = AclOperation
WILDCARD_RESOURCE = "*"
WILDCARD_PRINCIPAL = "User:*"
WILDCARD_HOST = "*"
CLUSTER_NAME = "kafka-cluster"  # the one CLUSTER resource's name

# What an ALLOW of the key also allows (Kafka's AclEntry implication rules).
IMPLIED_BY = {
    Op.DESCRIBE: {Op.READ, Op.WRITE, Op.DELETE, Op.ALTER},
    Op.DESCRIBE_CONFIGS: {Op.ALTER_CONFIGS},
}

# The operations each resource type supports (Kafka's AclEntry.supportedOperations), in
# code order: the authorized-operations bit fields are made of these.
SUPPORTED_OPERATIONS = {
    ResourceType.TOPIC: (Op.READ, Op.WRITE, Op.CREATE, Op.DELETE, Op.ALTER, Op.DESCRIBE,
                         Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS),
    ResourceType.GROUP: (Op.READ, Op.DELETE, Op.DESCRIBE, Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS),
    ResourceType.CLUSTER: (Op.CREATE, Op.ALTER, Op.DESCRIBE, Op.CLUSTER_ACTION, Op.DESCRIBE_CONFIGS,
                           Op.ALTER_CONFIGS, Op.IDEMPOTENT_WRITE),
    ResourceType.TRANSACTIONAL_ID: (Op.WRITE, Op.DESCRIBE, Op.TWO_PHASE_COMMIT),
}


def operations_bits(operations: Iterable[AclOperation]) -> int:
    """The authorized-operations bit field of Kafka's responses: bit ``code`` per operation."""
    bits = 0
    for op in operations:
        bits |= 1 << int(op)
    return bits


@dataclass(frozen=True, slots=True)
class AclBinding:
    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission_type: int

    def resource_matches(self, resource_type: int, name: str) -> bool:
        """Whether this binding's pattern applies to the resource ``resource_type``/``name``."""
        if self.resource_type != resource_type:
            return False
        if self.pattern_type == PatternType.LITERAL:
            return self.resource_name in (name, WILDCARD_RESOURCE)
        return self.pattern_type == PatternType.PREFIXED and name.startswith(self.resource_name)

    def applies_to(self, principal: str, host: str) -> bool:
        return (self.principal in (principal, WILDCARD_PRINCIPAL)
                and self.host in (host, WILDCARD_HOST))


@dataclass(frozen=True, slots=True)
class AclFilter:
    """A DescribeAcls/DeleteAcls filter: None and ANY match everything in their field."""
    resource_type: int = ResourceType.ANY
    resource_name: str | None = None
    pattern_type: int = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: int = Op.ANY
    permission_type: int = PermissionType.ANY

    def matches(self, b: AclBinding) -> bool:
        if self.resource_type != ResourceType.ANY and b.resource_type != self.resource_type:
            return False
        if not self._pattern_matches(b):
            return False
        return ((self.principal is None or b.principal == self.principal)
                and (self.host is None or b.host == self.host)
                and (self.operation == Op.ANY or b.operation == self.operation)
                and (self.permission_type == PermissionType.ANY
                     or b.permission_type == self.permission_type))

    def _pattern_matches(self, b: AclBinding) -> bool:
        if self.pattern_type == PatternType.MATCH:
            if self.resource_name is None:
                return True
            if b.pattern_type == PatternType.LITERAL:
                return b.resource_name in (self.resource_name, WILDCARD_RESOURCE)
            return self.resource_name.startswith(b.resource_name)
        if self.pattern_type not in (PatternType.ANY, b.pattern_type):
            return False
        return self.resource_name is None or b.resource_name == self.resource_name

    def invalid(self) -> str | None:
        """Why this filter cannot match anything meaningful (Kafka refuses UNKNOWN values)."""
        for name, value in (("resource type", self.resource_type), ("pattern type", self.pattern_type),
                            ("operation", self.operation), ("permission type", self.permission_type)):
            if value == 0:
                return f"Filter has an UNKNOWN {name}"
        return None


def parse_principal(text: str) -> tuple[str, str] | None:
    """``Type:name`` -> (type, name); None when it has no type."""
    kind, sep, name = text.partition(":")
    return (kind, name) if sep and kind else None


def binding_error(b: AclBinding) -> str | None:
    """Why ``b`` cannot be created, in Kafka's words (AclControlManager.validateNewAcl;
    None: it can)."""
    try:
        resource_type = ResourceType(b.resource_type)
        pattern_type = PatternType(b.pattern_type)
        operation = Op(b.operation)
        permission = PermissionType(b.permission_type)
    except ValueError:
        return "Invalid ACL: unknown code"
    # (Kafka's AclControlManager checks no more: an operation a type does not support, or a
    # CLUSTER named otherwise than kafka-cluster, is accepted and simply never matches.)
    if resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
        return f"Invalid resourceType {resource_type.name}"
    if pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
        return f"Invalid patternType {pattern_type.name}"
    if operation in (Op.UNKNOWN, Op.ANY):
        return f"Invalid operation {operation.name}"
    if permission not in (PermissionType.ALLOW, PermissionType.DENY):
        return f"Invalid permissionType {permission.name}"
    if not b.resource_name:
        return "Resource name should not be empty"
    if parse_principal(b.principal) is None:
        return f"Could not parse principal from `{b.principal}` (no colon is present separating " \
               "the principal type from the principal name)"
    if not b.host:
        return "Invalid host: it should not be empty"
    return None


class AclDecider:
    """Decides whether a principal may do an operation on a resource, from the bindings.

    Bindings are kept by resource type; the count stays small in practice (Kafka's own
    authorizer also scans by prefix), so a scan of one type's bindings is fine here.
    """

    def __init__(self, super_users: Iterable[str] = (), allow_if_no_acl: bool = False):
        self.super_users = frozenset(super_users)
        self.allow_if_no_acl = allow_if_no_acl
        self.by_type: dict[int, list[AclBinding]] = {}

    def set_bindings(self, bindings: Iterable[AclBinding]) -> None:
        by_type: dict[int, list[AclBinding]] = {}
        for b in bindings:
            by_type.setdefault(b.resource_type, []).append(b)
        self.by_type = by_type

    def allowed(self, principal: str, host: str, operation: AclOperation,
                resource_type: ResourceType, name: str) -> bool:
        if principal in self.super_users:
            return True
        matching = [b for b in self.by_type.get(resource_type, ()) if b.resource_matches(resource_type, name)]
        allowed = False
        for b in matching:
            if not b.applies_to(principal, host):
                continue
            if b.permission_type == PermissionType.DENY:
                if b.operation in (operation, Op.ALL):
                    return False
            elif b.operation in (operation, Op.ALL) or b.operation in IMPLIED_BY.get(operation, ()):
                allowed = True
        return allowed or (not matching and self.allow_if_no_acl)

    def allowed_operations(self, principal: str, host: str, resource_type: ResourceType,
                           name: str) -> list[AclOperation]:
        return [op for op in SUPPORTED_OPERATIONS[resource_type]
                if self.allowed(principal, host, op, resource_type, name)]

    def allowed_on_any(self, principal: str, host: str, operation: AclOperation,
                       resource_type: ResourceType) -> bool:
        """Whether some resource of this type may get ``operation`` (Kafka's
        authorizeByResourceType: an ALLOW for the principal that no DENY of the same
        or a wider pattern cancels). Used where a request names no resource, as an
        idempotent InitProducerId does (WRITE on any topic)."""
        if principal in self.super_users:
            return True
        bindings = [b for b in self.by_type.get(resource_type, ())
                    if b.applies_to(principal, host) and b.operation in (operation, Op.ALL)]
        denies = [b for b in bindings if b.permission_type == PermissionType.DENY]
        if any(d.pattern_type == PatternType.LITERAL and d.resource_name == WILDCARD_RESOURCE
               for d in denies):
            return False
        for b in bindings:
            if b.permission_type != PermissionType.ALLOW:
                continue
            if not any(self._covers(d, b) for d in denies):
                return True
        return self.allow_if_no_acl and not self.by_type.get(resource_type)

    @staticmethod
    def _covers(deny: AclBinding, allow: AclBinding) -> bool:
        """Whether ``deny`` takes away every resource ``allow`` gives."""
        if deny.pattern_type == PatternType.PREFIXED:
            return allow.resource_name.startswith(deny.resource_name)
        return allow.pattern_type == PatternType.LITERAL and allow.resource_name == deny.resource_name
