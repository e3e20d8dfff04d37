"""Share sessions (KIP-932): which partitions a member fetches from this node, and the
epoch rule that orders its ShareFetch and ShareAcknowledge requests. Pure: no I/O.

A session is keyed by (group id, member id). ShareFetch epoch 0 opens it (replacing
one the member had: what that one held is released by the caller) with the partitions
the request names; each later request carries the next epoch (1, 2, ... wrapping to 1
after 2**31 - 1), adds the partitions it names and drops its forgotten ones; epoch -1
acknowledges and closes. Errors, as Kafka's SharePartitionManager answers them:
SHARE_SESSION_NOT_FOUND (a non-zero epoch with no session), INVALID_SHARE_SESSION_EPOCH
(the wrong epoch, or ShareAcknowledge with epoch 0), SHARE_SESSION_LIMIT_REACHED (more
than group.share.max.share.sessions sessions on this node). A session belongs to the
connection that opened it (``owner``): when that connection closes the session goes and
what its member held is released at once (as Kafka 4.1+ does), so a killed consumer's
records are not held to their lock's end and dead sessions never fill the limit.
"""

import uuid
from dataclasses import dataclass, field

from odradek.protocol.errors import ErrorCode

OPEN_EPOCH = 0
CLOSE_EPOCH = -1
MAX_EPOCH = 2**31 - 1

TopicIdPartition = tuple[uuid.UUID, int]


@dataclass(slots=True)
class ShareSession:
    group_id: str
    member_id: str
    next_epoch: int = 1
    partitions: set[TopicIdPartition] = field(default_factory=set)
    owner: object = None  # the connection that opened it


class ShareSessions:
    def __init__(self, max_sessions: int):
        self.max_sessions = max_sessions
        self.sessions: dict[tuple[str, str], ShareSession] = {}

    def fetch(self, group_id: str, member_id: str, epoch: int, named: list[TopicIdPartition],
              forgotten: list[TopicIdPartition], owner: object = None
              ) -> tuple[ErrorCode, ShareSession | None, ShareSession | None]:
        """A ShareFetch's session: (error, the session, the one it replaced if any)."""
        key = (group_id, member_id)
        old = self.sessions.get(key)
        if epoch == OPEN_EPOCH:
            if old is None and len(self.sessions) >= self.max_sessions:
                return ErrorCode.SHARE_SESSION_LIMIT_REACHED, None, None
            session = self.sessions[key] = ShareSession(group_id, member_id, 1, set(named), owner)
            return ErrorCode.NONE, session, old
        error = self._check(old, epoch)
        if error or old is None:
            return error, None, None
        if epoch != CLOSE_EPOCH:
            old.partitions |= set(named)
            old.partitions -= set(forgotten)
        return ErrorCode.NONE, old, None

    def acknowledge(self, group_id: str, member_id: str, epoch: int) -> tuple[ErrorCode, ShareSession | None]:
        """A ShareAcknowledge's session (epoch 0 opens nothing here)."""
        if epoch == OPEN_EPOCH:
            return ErrorCode.INVALID_SHARE_SESSION_EPOCH, None
        session = self.sessions.get((group_id, member_id))
        error = self._check(session, epoch)
        return error, session if not error else None

    def owned_by(self, owner: object) -> list[ShareSession]:
        return [s for s in self.sessions.values() if s.owner is owner]

    def close(self, session: ShareSession) -> None:
        if self.sessions.get((session.group_id, session.member_id)) is session:
            del self.sessions[(session.group_id, session.member_id)]

    @staticmethod
    def _check(session: ShareSession | None, epoch: int) -> ErrorCode:
        if session is None:
            return ErrorCode.SHARE_SESSION_NOT_FOUND
        if epoch == CLOSE_EPOCH:
            return ErrorCode.NONE
        if epoch != session.next_epoch:
            return ErrorCode.INVALID_SHARE_SESSION_EPOCH
        session.next_epoch = 1 if epoch == MAX_EPOCH else epoch + 1
        return ErrorCode.NONE
