"""SaslHandshake (v0-v1): the client names its SASL mechanism (see odradek.broker.sasl).

After v0 the tokens follow as bare frames, after v1 in SaslAuthenticate requests. A
mechanism not enabled on the listener is answered UNSUPPORTED_SASL_MECHANISM with the
enabled ones, then the connection closes, as in Kafka. Once authenticated, a handshake
starts a re-authentication (KIP-368) if sessions expire (connections.max.reauth.ms);
otherwise, and on a listener without SASL, the answer is ILLEGAL_SASL_STATE (KafkaApis).
"""

from kafka.protocol.sasl import SaslHandshakeRequest, SaslHandshakeResponse

from odradek.broker.handlers import handles
from odradek.protocol.errors import ErrorCode


@handles(SaslHandshakeRequest, 0, 1)
async def handle(ctx, request):
    session = ctx.connection.sasl
    if session is None or not session.may_handshake():
        return SaslHandshakeResponse(error_code=ErrorCode.ILLEGAL_SASL_STATE, mechanisms=[])
    if not session.handshake(request.mechanism, ctx.header.api_version):
        ctx.connection.close_after_response(f"SASL mechanism {request.mechanism!r} is not enabled")
        return SaslHandshakeResponse(error_code=ErrorCode.UNSUPPORTED_SASL_MECHANISM,
                                     mechanisms=session.mechanisms)
    return SaslHandshakeResponse(error_code=ErrorCode.NONE, mechanisms=session.mechanisms)
