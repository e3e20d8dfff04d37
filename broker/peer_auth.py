"""How this node proves who it is to its peers when the inter-node listener is secured
(odradek.replication.peer.PeerSecurity): TLS with its own certificate, and/or SASL PLAIN
with the node's credentials (the username/password of the listener's PLAIN JAAS line, as
Kafka's inter-broker client). The server side checks the principal (server.Connection).

The exchange, before any other request on the connection::

    SaslHandshake v1 (mechanism PLAIN)      -> error_code 0
    SaslAuthenticate v1 ("\\0user\\0password") -> error_code 0, else the connection is useless
"""

import asyncio
import struct

from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)

from odradek.broker.tls import client_context
from odradek.replication.peer import CLIENT_ID, PeerSecurity

VERSION = 1  # of both requests: not flexible, so the headers are v1


async def _roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request,
                     response_class, correlation_id: int):
    body = bytes(request.encode(version=VERSION))
    header = struct.pack(">hhih", request.API_KEY, VERSION, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    writer.write(struct.pack(">i", len(header) + len(body)) + header + body)
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    frame = await reader.readexactly(size)
    return response_class.decode(memoryview(frame)[4:], version=VERSION)


def plain_authenticator(user: str, password: str):
    async def authenticate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answer = await _roundtrip(reader, writer, SaslHandshakeRequest(mechanism="PLAIN"),
                                  SaslHandshakeResponse, 1)
        if answer.error_code:
            raise ValueError(f"SaslHandshake PLAIN answered error {answer.error_code}")
        token = b"\x00" + user.encode() + b"\x00" + password.encode()
        answer = await _roundtrip(reader, writer, SaslAuthenticateRequest(auth_bytes=token),
                                  SaslAuthenticateResponse, 2)
        if answer.error_code:
            raise ValueError(f"SaslAuthenticate as {user}: error {answer.error_code} {answer.error_message}")
    return authenticate


def peer_security(config) -> PeerSecurity | None:
    """None when the inter-node listener is PLAINTEXT."""
    if config.peer_principals is None:
        return None
    listener = config.listener(config.inter_broker_listener_name)
    return PeerSecurity(
        ssl_context=client_context(config, listener.name) if listener.tls else None,
        authenticate=plain_authenticator(*config.node_credentials) if config.node_credentials else None)
