"""AlterUserScramCredentials (v0) and DescribeUserScramCredentials (v0): SCRAM users.

The client salts the password itself (kafka-configs --add-config
'SCRAM-SHA-256=[iterations=8192,password=...]'); we keep only the salt, StoredKey,
ServerKey and the iteration count (odradek.broker.sasl), as records in the replicated
metadata log (UserScramCredentialRecord), so every node authenticates the same users.
Checks and messages follow Kafka's: an unknown mechanism, an empty user name, iterations
outside 4096..16384, or a user named twice in one request (even for two mechanisms, as
Kafka 4.4 answers) fail that user; the others still change.
"""

from kafka.protocol.admin.users import (
    AlterUserScramCredentialsRequest,
    AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
)

from odradek.broker import sasl
from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode, KafkaError

Result = AlterUserScramCredentialsResponse.AlterUserScramCredentialsResult
Described = DescribeUserScramCredentialsResponse.DescribeUserScramCredentialsResult


def _check(name: str, mechanism: int, iterations: int | None) -> tuple[ErrorCode, str] | None:
    if not name:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"
    if mechanism not in sasl.SCRAM_NAMES:
        return ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"
    if iterations is not None and iterations < sasl.MIN_ITERATIONS:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations"
    if iterations is not None and iterations > sasl.MAX_ITERATIONS:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations"
    return None


def upsertion_record(u) -> dict:
    """An upsertion as UserScramCredentialRecord fields (the keys derived here)."""
    mechanism = sasl.SCRAM_NAMES[u.mechanism]
    c = sasl.credential_from_salted_password(mechanism, bytes(u.salt), bytes(u.salted_password),
                                             u.iterations)
    return c.record_fields(u.name, mechanism)


@handles(AlterUserScramCredentialsRequest, 0, 0)
async def handle_alter(ctx, request):
    users: list[str] = []  # one result per user, in the order first named
    errors: dict[str, tuple[ErrorCode, str]] = {}
    for d in request.deletions:
        users.append(d.name)
        problem = _check(d.name, d.mechanism, None)
        if problem and d.name not in errors:
            errors[d.name] = problem
    for u in request.upsertions:
        users.append(u.name)
        problem = _check(u.name, u.mechanism, u.iterations)
        if problem is None and not u.salted_password:
            problem = ErrorCode.UNACCEPTABLE_CREDENTIAL, "Salted password must not be empty"
        if problem and u.name not in errors:
            errors[u.name] = problem
    for name in users:
        if users.count(name) > 1:
            errors[name] = (ErrorCode.DUPLICATE_RESOURCE,
                            "A user credential cannot be altered twice in the same request")
    deletions = [[d.name, d.mechanism] for d in request.deletions if d.name not in errors]
    upsertions = [upsertion_record(u) for u in request.upsertions if u.name not in errors]
    if deletions or upsertions:
        try:
            failed = await ctx.broker.controller.alter_scram_credentials(deletions, upsertions)
        except KafkaError as e:
            failed = {name: [e.code, e.message] for name, _ in deletions}
            failed.update({u["name"]: [e.code, e.message] for u in upsertions})
        for name, (code, message) in failed.items():
            errors.setdefault(name, (ErrorCode(code), message))
    results = []
    for name in dict.fromkeys(users):
        code, message = errors.get(name, (ErrorCode.NONE, None))
        results.append(Result(user=name, error_code=code, error_message=message))
    return AlterUserScramCredentialsResponse(throttle_time_ms=0, results=results)


@handles(DescribeUserScramCredentialsRequest, 0, 0)
async def handle_describe(ctx, request):
    scram = ctx.broker.image.scram
    by_user: dict[str, list] = {}
    # by user, then mechanism (Kafka's order follows hash maps and varies)
    for (name, mechanism), r in sorted(scram.items()):
        by_user.setdefault(name, []).append(
            Described.CredentialInfo(mechanism=mechanism, iterations=r.iterations))
    if not request.users:  # null or empty: every user with a credential
        results = [Described(user=name, error_code=ErrorCode.NONE, error_message="", credential_infos=infos)
                   for name, infos in by_user.items()]
        return DescribeUserScramCredentialsResponse(throttle_time_ms=0, error_code=ErrorCode.NONE,
                                                    error_message="", results=results)
    names = [u.name for u in request.users]
    results = []
    for name in dict.fromkeys(names):
        if names.count(name) > 1:
            results.append(Described(user=name, error_code=ErrorCode.DUPLICATE_RESOURCE,
                                     error_message="Cannot describe SCRAM credentials for the same user "
                                                   f"twice in a single request: {name}", credential_infos=[]))
        elif name not in by_user:
            results.append(Described(user=name, error_code=ErrorCode.RESOURCE_NOT_FOUND,
                                     error_message=f"Attempt to describe a user credential that does not "
                                                   f"exist: {name}", credential_infos=[]))
        else:
            results.append(Described(user=name, error_code=ErrorCode.NONE, error_message="",
                                     credential_infos=by_user[name]))
    return DescribeUserScramCredentialsResponse(throttle_time_ms=0, error_code=ErrorCode.NONE,
                                                error_message="", results=results)
