"""SaslAuthenticate (v0-v2): one SASL token each way, after a v1 SaslHandshake.

A failed authentication is answered SASL_AUTHENTICATION_FAILED with the reason, then
the connection closes (Kafka's SaslServerAuthenticator). session_lifetime_ms (v1+) is
connections.max.reauth.ms (0: the session does not expire); clients re-authenticate
before it ends (KIP-368), else their next request closes the connection.
"""

import time

from kafka.protocol.sasl import SaslAuthenticateRequest, SaslAuthenticateResponse

from odradek.broker.handlers import handles
from odradek.broker.sasl import AUTHENTICATING, AuthenticationFailed
from odradek.protocol.errors import ErrorCode


@handles(SaslAuthenticateRequest, 0, 2)
async def handle(ctx, request):
    conn = ctx.connection
    session = conn.sasl
    if session is None or session.state != AUTHENTICATING or session.raw_tokens:
        return SaslAuthenticateResponse(
            error_code=ErrorCode.ILLEGAL_SASL_STATE, auth_bytes=b"", session_lifetime_ms=0,
            error_message="Unexpected SaslAuthenticate request: no SASL handshake in progress")
    try:
        answer = session.authenticate(bytes(request.auth_bytes or b""), time.monotonic())
    except AuthenticationFailed as e:
        conn.close_after_response(f"SASL authentication failed: {e}")
        return SaslAuthenticateResponse(error_code=ErrorCode.SASL_AUTHENTICATION_FAILED,
                                        error_message=str(e), auth_bytes=b"", session_lifetime_ms=0)
    if session.authenticated:
        conn.authenticated(session.principal)
    return SaslAuthenticateResponse(error_code=ErrorCode.NONE, error_message=None, auth_bytes=answer,
                                    session_lifetime_ms=session.session_lifetime_ms)
