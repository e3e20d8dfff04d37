"""queued.max.request.bytes (broker.server.RequestMemory) with stand-in connections:
past the limit exactly one connection with an incomplete frame reads on, and one
always can if any is able to."""

from odradek.broker.server import RequestMemory


class Decoder:
    def __init__(self):
        self.missing = 0


class Conn:
    """What RequestMemory sees of a connection; reading as Connection.update_reading decides."""

    def __init__(self, memory):
        self.memory, self.decoder, self.held = memory, Decoder(), 0
        self.closed, self.blocked, self.reading = False, False, True

    def waits_on_itself(self):
        return self.blocked

    def update_reading(self):
        self.reading = not self.waits_on_itself() and self.memory.may_read(self)
        if self.waits_on_itself():
            self.memory.step_down(self)


def setup(n=3, limit=100):
    conns = set()
    memory = RequestMemory(limit, conns)
    members = [Conn(memory) for _ in range(n)]
    conns.update(members)
    return memory, members


def test_over_the_limit_only_the_nearest_frame_reads_on():
    memory, (a, b, c) = setup()
    a.decoder.missing, b.decoder.missing = 50, 10
    memory.charge(a, 60)
    memory.charge(b, 60)
    assert memory.over and [x.reading for x in (a, b, c)] == [False, True, False]
    memory.release(a, 60)
    assert not memory.over and all(x.reading for x in (a, b, c))


def test_a_frame_that_becomes_able_to_read_later_may_finish():
    memory, (a, b, c) = setup()
    a.decoder.missing, a.blocked = 50, True  # e.g. its responses are not being read
    memory.charge(a, 150)
    assert memory.over and memory.finisher is None
    a.blocked = False  # its write buffer drained
    a.update_reading()
    assert a.reading and memory.finisher is a and not b.reading


def test_a_finisher_that_blocks_on_itself_hands_over():
    memory, (a, b, c) = setup()
    a.decoder.missing, b.decoder.missing = 5, 50
    memory.charge(a, 150)
    assert memory.finisher is a
    a.blocked = True
    a.update_reading()
    assert memory.finisher is b and b.reading and not a.reading
