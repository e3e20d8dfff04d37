"""Reading a node's HTTP listener in tests: GET, and /metrics as a dict of samples."""

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(base: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics: (name, labels) -> value."""
    status, text = get(base + "/metrics")
    assert status == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def start_with_http(data_dir, overrides: dict[str, str] | None = None):
    """A broker process with its HTTP listener on a free port; ``.http`` is its base URL."""
    from tests.brokerproc import BrokerProcess, free_port

    http_port = free_port()
    b = BrokerProcess(data_dir, overrides={"http.listener": f"127.0.0.1:{http_port}",
                                           "group.initial.rebalance.delay.ms": "0", **(overrides or {})})
    b.http = f"http://127.0.0.1:{http_port}"
    return b.start()
