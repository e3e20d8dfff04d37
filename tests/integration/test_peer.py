"""replication.peer.Peer, the inter-node connection, against a real socket."""

import asyncio

import pytest

from odradek.replication.peer import Peer, PeerUnavailable


async def test_a_request_that_times_out_gives_up_its_connection():
    """A node cut off by a network partition accepts nothing and answers nothing, and TCP
    holds what is written on the old connection for as long as its retransmission
    backoff has grown (seconds, after a partition of seconds): the next request must
    go out on a new connection, so that it is answered as soon as the network heals."""
    connections = []

    async def silent(reader, writer):  # reads every request, answers none
        connections.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    peer = Peer(2, "127.0.0.1", port, from_node=1)
    try:
        for _ in range(2):
            with pytest.raises(PeerUnavailable):
                await peer.request(99, {"ping": 1}, timeout_s=0.2)
        async with asyncio.timeout(5):  # each attempt was its own connection
            while len(connections) < 2:
                await asyncio.sleep(0.01)
        assert len(connections) == 2
    finally:
        peer.close()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.05)  # the handlers see their connections end
