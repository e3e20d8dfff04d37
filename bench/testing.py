"""odradek.testing: how long a test waits for Odradek (issue 21).

Measured:
- imports, each in a fresh interpreter (median of 5): ``import odradek.testing`` (what
  the pytest plugin and a test module pay), and the broker that the first ``Broker()``
  imports (``odradek.testing._node`` with every handler), beside ``python -c pass``;
- in process, after those imports: ``Broker()`` from ``start()`` to ready (a client's
  first Metadata is answered) and ``close()``, and ``Cluster(nodes=3)`` to ready (all
  three registered with the active controller), the first one with the zygote's start
  (it imports the broker once for every node it forks), then the next ones.
Targets: one node under 0.5 s, three under 2 s.
"""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results-testing.json"
RUNS = 5


def fresh_interpreter_s(code: str) -> float:
    """Median seconds of ``code`` timed inside a new interpreter (startup excluded)."""
    script = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
    return statistics.median(float(subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
        for _ in range(RUNS))


def interpreter_s() -> float:
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    results = {
        "python -c pass (s)": interpreter_s(),
        "import odradek.testing (s)": fresh_interpreter_s("import odradek.testing"),
        "import the broker (s)": fresh_interpreter_s(
            "import odradek.testing._node as n; n.load_handlers()"),
    }
    import odradek.testing
    from odradek.testing import _node, api

    _node.load_handlers()
    starts, closes = [], []
    for _ in range(RUNS * 2):
        broker = odradek.testing.Broker()
        starts.append(timed(broker.start))
        closes.append(timed(broker.close))
    results["Broker() start to ready, median (s)"] = statistics.median(starts)
    results["Broker() start to ready, max (s)"] = max(starts)
    results["Broker() close, median (s)"] = statistics.median(closes)
    cluster_starts = []
    for _ in range(RUNS):
        cluster = odradek.testing.Cluster(nodes=3)
        cluster_starts.append(timed(cluster.start))
        cluster.close()
    results["Cluster(3) first start, with the zygote (s)"] = cluster_starts[0]
    results["Cluster(3) start to ready, median of the next (s)"] = statistics.median(cluster_starts[1:])
    results["Cluster(3) start to ready, max of the next (s)"] = max(cluster_starts[1:])
    api.shutdown()
    leaked = api.leaks()
    width = max(map(len, results))
    for name, value in results.items():
        print(f"{name:<{width}}  {value:8.3f}")
    print(f"{'left behind':<{width}}  {leaked or 'nothing'}")
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
