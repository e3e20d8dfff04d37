"""The console's chart window (broker/console/history.py): rates from counters, bounded."""

from odradek.broker.console.history import History


def test_rates_between_samples_never_negative_and_bounded():
    h = History(kept=3)
    h.add(10.0, {"t": (0, 0)}, {"g": 5})
    h.add(12.0, {"t": (2000, 500)}, {"g": 7})
    assert h.topic_rates("t") == [{"t": 12.0, "in": 1000.0, "out": 250.0}]
    h.add(14.0, {}, {})  # the topic was deleted: its counters restart at zero
    h.add(16.0, {"t": (100, 0)}, {"g": 1})
    assert len(h.samples) == 3  # the oldest went
    assert [p["in"] for p in h.topic_rates("t")] == [0.0, 50.0]
    assert h.group_lag("g") == [{"t": 12.0, "lag": 7}, {"t": 16.0, "lag": 1}]
