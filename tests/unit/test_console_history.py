"""The console's chart history (broker.console.History) and its inline SVG."""

from odradek.broker.console import History, sparkline


def test_rates_between_samples_and_a_bounded_window():
    h = History(samples=3)
    h.record(0.0, {"t": 0}, {"g": 4})
    h.record(5.0, {"t": 500}, {"g": 2})
    h.record(10.0, {"t": 1500, "u": 10}, {"g": 0})
    assert h.rates("t") == [100.0, 200.0]
    assert h.rates("u") == [0.0, 2.0]
    assert h.lags("g") == [4.0, 2.0, 0.0]
    h.record(15.0, {"t": 0}, {})  # counters reset (a restart): no negative rate; window of 3
    assert h.rates("t") == [200.0, 0.0] and h.lags("g") == [2.0, 0.0, 0.0]


def test_sparkline_is_inline_svg_with_escaped_label():
    assert "collecting" in sparkline([1.0], "x")
    svg = sparkline([0.0, 5.0, 10.0], 'lag of <g"1>')
    assert svg.startswith("<svg") and 'data-last="10.0"' in svg and "<g\"1>" not in svg
    assert "points=\"0.0,38.0 120.0,20.0 240.0,2.0\"" in svg
    assert "http" not in svg.split("</svg>")[0].replace("http://www.w3.org", "")
