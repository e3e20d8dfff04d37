"""A short chaos mix for CI: the most telling scenarios of tests/reliability, each on a
fresh three-node cluster with a recorded workload, judged by the history checker.

`make chaos` runs every scenario for longer (about 30 minutes). A failing test prints
the anomalies and the history's path; re-check it with
``python -m tests.reliability.checker PATH``.
"""

import pytest

from tests.conftest import CI
from tests.reliability.scenarios import network_problem, run

# (scenario, fault duration in seconds): 25-50 s each on two cores, so that make test stays
# within 30 minutes. Every scenario runs in `make chaos`, for longer. Here leader-killed-5x
# stands for the kills, random-mix draws from every fault (isolation, whole-cluster kills,
# pauses, drops, torn tails) and transactions runs the transactional workload through
# kills, isolation and pauses.
CI_MIX = [
    ("leader-killed-5x", 6),
    ("random-mix", 15),
    # transactional producers and read_committed consumers through one leader kill
    ("transactions", 5),
]


@pytest.mark.parametrize(("name", "duration_s"), CI_MIX,
                         ids=[name for name, _ in CI_MIX])
def test_chaos_scenario(name, duration_s, tmp_path):
    if network_problem():  # root, ip netns and iptables: .ci/run installs them
        if CI:
            pytest.fail(f"network namespaces unavailable under CI: {network_problem()}")
        pytest.skip(f"needs network namespaces and iptables: {network_problem()}")
    result = run(name, tmp_path, seed=7, duration_s=duration_s)
    if result.skipped:
        pytest.skip(result.skipped)
    summary = "\n".join([f"{name}: {result.anomaly_text}; history {result.history}",
                         *result.anomaly_lines[:20], *result.notes[:20]])
    print(summary)
    assert not result.error, summary
    assert not result.anomalies, summary
    # The workload ran and the cluster took writes through the faults: a broken harness
    # that records nothing must not pass.
    if name == "transactions":
        committed, aborted, _ = result.txns
        assert committed >= 50 and aborted >= 5 and result.values_read >= 100, summary
    else:
        assert result.acknowledged >= 1000, summary
    assert result.history
