"""The console's chart window (broker/console/history.py): rates from counters, bounded."""

from odradek.broker.console.history import History, partition_lags


def test_rates_between_samples_never_negative_and_bounded():
    h = History(kept=3)
    h.add(10.0, {"t": (0, 0)}, {"g": {"t-0": 5}})
    h.add(12.0, {"t": (2000, 500)}, {"g": partition_lags({("t", 1): 3, ("t", 0): 4, ("t", 2): None})})
    assert h.topic_rates("t") == [{"t": 12.0, "in": 1000.0, "out": 250.0}]
    h.add(14.0, {}, {})  # the topic was deleted: its counters restart at zero
    h.add(16.0, {"t": (100, 0)}, {"g": {"t-0": 1}})
    assert len(h.samples) == 3  # the oldest went
    assert [p["in"] for p in h.topic_rates("t")] == [0.0, 50.0]
    # one series per partition (a partition of unknown lag has none)
    assert h.group_lag("g") == [{"t": 12.0, "t-0": 4, "t-1": 3}, {"t": 16.0, "t-0": 1}]


def test_the_sampler_runs_only_while_the_console_is_used():
    """No sampling for nobody: the first console request starts it, IDLE_S without one
    stops it, and the next request starts it again."""
    import asyncio

    from odradek.broker.console import history

    now = [0.0]
    started: list = []

    async def tick(_s):  # the clock moves one interval per sample
        now[0] += history.INTERVAL_S

    h = History()
    sampler = history.Sampler(h, lambda: ({"t": (1, 0)}, {}), started.append,
                              clock=lambda: now[0], sleep=tick)

    async def scenario():
        assert started == [] and not sampler.running  # nobody asked: no task
        sampler.touch()
        sampler.touch()
        assert started == [sampler.run]  # one task, however many requests
        await started[0]()  # runs until idle
        assert not sampler.running and sampler.idle()
        assert len(h.samples) == history.KEPT  # sampled for IDLE_S, kept within bounds
        sampler.touch()
        assert len(started) == 2  # used again: sampling again

    asyncio.run(scenario())
