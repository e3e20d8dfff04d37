"""systemd's readiness protocol (sd_notify), in a few lines instead of a dependency.

Under a unit with ``Type=notify`` systemd sets ``NOTIFY_SOCKET`` to a unix datagram
socket (a path, or an abstract name written with a leading ``@``) and waits for
``READY=1`` before it counts the service as started (and starts what is ordered
after it); ``STOPPING=1`` tells it a stop is under way. Each message is one datagram
of ``KEY=VALUE`` lines. Without the variable (not under systemd) nothing is sent.

The node says READY=1 once its listeners serve, not once it is /readyz-ready: a
cluster node is ready only with a quorum, and units started one after another would
wait on each other forever.
"""

import os
import socket

import structlog

log = structlog.get_logger(__name__)


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to systemd; False if not under systemd or it failed."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # Linux's abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as e:
        log.warning("sd_notify_failed", notify_socket=os.environ["NOTIFY_SOCKET"], error=str(e))
        return False
    return True
