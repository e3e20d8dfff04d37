"""The pytest plugin as a project gets it: a pytest run in a subprocess of its own, with
the plugin loaded from its entry point, that forgets to close what it started."""

import os

import pytest

pytest_plugins = ["pytester"]

LEAKY = '''
from odradek.testing import Broker

def test_forgets_to_close():
    Broker().start()
'''

TIDY = '''
def test_uses_the_fixture(odradek_broker):
    assert odradek_broker.bootstrap_servers.startswith("127.0.0.1:")
'''


def test_a_broker_left_running_fails_the_session(pytester: pytest.Pytester):
    pytester.makepyfile(test_leaky=LEAKY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*odradek.testing: left behind after the session:*",
                                 "*directory *odradek-testing-*", "*thread odradek-broker-*",
                                 "*port 127.0.0.1:* still accepts connections*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    leaked_dir = next(line.split()[-1] for line in result.stdout.lines if "directory" in line)
    assert not os.path.exists(leaked_dir)  # reported, then removed


def test_a_fixture_leaves_nothing(pytester: pytest.Pytester):
    pytester.makepyfile(test_tidy=TIDY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "left behind" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.OK
