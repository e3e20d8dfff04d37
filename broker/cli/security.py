"""``odradek acls | users``: ACLs (CreateAcls, DescribeAcls, DeleteAcls) and SCRAM users
(AlterUserScramCredentials, DescribeUserScramCredentials), as Kafka's kafka-acls and
``kafka-configs --entity-type users`` manage them, through kafka-python's admin client
(see broker.cli.admin for why that client). A resource is named by exactly one of
--topic, --group, --transactional-id or --cluster; --prefixed makes it a prefix."""

from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from odradek.broker.cli.admin import _result_error, admin, explain
from odradek.broker.cli.output import CliError, Report

CLUSTER_NAME = "kafka-cluster"  # the one CLUSTER resource's name, as Kafka's


def resource_args(parser, required: bool) -> None:
    which = parser.add_mutually_exclusive_group(required=required)
    which.add_argument("--topic", metavar="NAME")
    which.add_argument("--group", metavar="NAME")
    which.add_argument("--transactional-id", metavar="ID")
    which.add_argument("--cluster", action="store_true", help="the cluster resource")
    parser.add_argument("--prefixed", action="store_true", help="the name is a prefix (PREFIXED)")


def _resource(args) -> tuple[ResourceType, str | None]:
    for attr, kind in (("topic", ResourceType.TOPIC), ("group", ResourceType.GROUP),
                       ("transactional_id", ResourceType.TRANSACTIONAL_ID)):
        if getattr(args, attr):
            return kind, getattr(args, attr)
    if args.cluster:
        return ResourceType.CLUSTER, CLUSTER_NAME
    return ResourceType.ANY, None


def _enum(enum, name: str, what: str):
    try:
        return enum[name.upper().replace("-", "_")]
    except KeyError:
        choices = ", ".join(m.name for m in enum if m.name not in ("UNKNOWN", "ANY", "MATCH"))
        raise CliError(f"{what} {name!r} is not one of {choices}") from None


def _filter(args) -> ACLFilter:
    kind, name = _resource(args)
    pattern = (ACLResourcePatternType.PREFIXED if args.prefixed else
               ACLResourcePatternType.LITERAL if name is not None else ACLResourcePatternType.ANY)
    return ACLFilter(principal=args.principal, host=args.host,
                     operation=_enum(ACLOperation, args.operation, "operation") if args.operation
                     else ACLOperation.ANY,
                     permission_type=ACLPermissionType.DENY if args.deny else
                     ACLPermissionType.ALLOW if args.allow else ACLPermissionType.ANY,
                     resource_pattern=ResourcePatternFilter(kind, name, pattern))


def _rows(acls: list) -> tuple[list[dict], list[list]]:
    data = [{"principal": a.principal, "host": a.host, "operation": a.operation.name,
             "permission": a.permission_type.name, "resource_type": a.resource_pattern.resource_type.name,
             "resource": a.resource_pattern.resource_name,
             "pattern": a.resource_pattern.pattern_type.name} for a in acls]
    rows = [[d["principal"], d["host"], d["operation"], d["permission"], d["resource_type"],
             d["resource"], d["pattern"]] for d in data]
    return data, rows


COLUMNS = ["PRINCIPAL", "HOST", "OPERATION", "PERMISSION", "RESOURCE TYPE", "RESOURCE", "PATTERN"]


def acls_list(args) -> Report:
    with admin(args) as a:
        acls, error = a.describe_acls(_filter(args))
    failure = _result_error(error, "describe ACLs")
    if failure is not None:
        raise failure
    data, rows = _rows(sorted(acls, key=lambda x: (x.resource_pattern.resource_name or "", x.principal)))
    return Report(data).table("", COLUMNS, rows)


def acls_create(args) -> Report:
    kind, name = _resource(args)
    pattern = ACLResourcePatternType.PREFIXED if args.prefixed else ACLResourcePatternType.LITERAL
    acls = [ACL(principal=principal, host=args.host or "*",
                operation=_enum(ACLOperation, operation, "operation"),
                permission_type=ACLPermissionType.DENY if args.deny else ACLPermissionType.ALLOW,
                resource_pattern=ResourcePattern(kind, name, pattern))
            for principal in args.principal for operation in args.operation]
    with admin(args) as a:
        result = a.create_acls(acls)
    for acl, error in result.get("failed", []):
        raise explain(error, "") if isinstance(error, Exception) else CliError(f"{acl}: {error}")
    data, rows = _rows(acls)
    return Report(data).table("", COLUMNS, rows)


def acls_delete(args) -> Report:
    with admin(args) as a:
        result = a.delete_acls([_filter(args)])
    deleted = []
    for _, matches, error in result:
        failure = _result_error(error, "delete ACLs")
        if failure is not None:
            raise failure
        deleted += matches
    data, rows = _rows(deleted)
    return Report(data).table("deleted", COLUMNS, rows)


# -- SCRAM users ---------------------------------------------------------------------------

def _mechanism(name: str) -> ScramMechanism:
    return _enum(ScramMechanism, name, "mechanism")


def users_list(args) -> Report:
    with admin(args) as a:
        found = a.describe_user_scram_credentials(args.users or None)
    data = {}
    for user, described in sorted(found.items()):
        if described.get("error"):
            raise CliError(f"user {user}: {described['error']}: `odradek users list` shows the users")
        data[user] = [{"mechanism": c["mechanism"].name.replace("_", "-"), "iterations": c["iterations"]}
                      for c in described["credential_infos"]]
    return Report(data).table("", ["USER", "MECHANISM", "ITERATIONS"],
                              [[u, c["mechanism"], c["iterations"]] for u, cs in data.items() for c in cs])


def _altered(args, alterations: list, verb: str) -> Report:
    with admin(args) as a:
        result = a.alter_user_scram_credentials(alterations)
    for user, error in result.items():
        if error:
            raise CliError(f"user {user}: {error}")
    return Report({"user": args.user, "mechanism": args.mechanism, "result": verb}).table(
        "", ["USER", "MECHANISM", "RESULT"], [[args.user, args.mechanism, verb]])


def users_set(args) -> Report:
    return _altered(args, [UserScramCredentialUpsertion(
        args.user, _mechanism(args.mechanism), args.password, iterations=args.iterations)], "set")


def users_delete(args) -> Report:
    return _altered(args, [UserScramCredentialDeletion(args.user, _mechanism(args.mechanism))], "deleted")


def add_commands(group, leaf) -> None:
    """The acls and users subcommands (``group`` and ``leaf`` from broker.cli._parser)."""
    acls = group("acls", "list, create and delete ACLs (an authorizer must be on)")
    for name, fn, help, required in (
            ("list", acls_list, "ACLs matching the filter (all without one)", False),
            ("create", acls_create, "allow (or --deny) operations to principals", True),
            ("delete", acls_delete, "delete the ACLs matching the filter", True)):
        p = leaf(acls, name, fn, help)
        resource_args(p, required=required)
        many = "append" if name == "create" else None
        p.add_argument("--principal", action=many, required=name == "create", metavar="User:NAME")
        p.add_argument("--operation", action=many, required=name == "create", metavar="OP",
                       help="READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION, "
                            "DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, ALL")
        p.add_argument("--host", metavar="HOST", help="default: any (*)")
        permission = p.add_mutually_exclusive_group()
        permission.add_argument("--allow", action="store_true")
        permission.add_argument("--deny", action="store_true")
    users = group("users", "list, set and delete SCRAM users")
    p = leaf(users, "list", users_list, "users with SCRAM credentials")
    p.add_argument("users", nargs="*", metavar="USER")
    p = leaf(users, "set", users_set, "create or change a user's SCRAM credential")
    p.add_argument("user", metavar="USER")
    p.add_argument("--mechanism", default="SCRAM-SHA-256", help="SCRAM-SHA-256 (default) or SCRAM-SHA-512")
    p.add_argument("--password", required=True)
    p.add_argument("--iterations", type=int, default=4096, help="4096..16384 (default 4096)")
    p = leaf(users, "delete", users_delete, "delete a user's SCRAM credential")
    p.add_argument("user", metavar="USER")
    p.add_argument("--mechanism", default="SCRAM-SHA-256")
