"""Consume over SSL against PLAINTEXT, from one node with both listeners.

Over PLAINTEXT a Fetch's record bytes go out with os.sendfile; over TLS they cannot (the
kernel would send them unencrypted): broker/server.py reads each file slice off the event
loop in 256 KiB pieces and writes it through the TLS transport, which encrypts in user
space. This measures what that costs: confluent-kafka consuming CONSUME_BYTES of 16 KiB
records from partition 0, ROUNDS alternating rounds per protocol, the best kept (the
machine is shared), with the broker's CPU seconds per GiB.

    python -m bench tls
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bench.produce import consume_throughput, fill_topic
from tests.brokerproc import BrokerProcess, free_port
from tests.certs import make_certs
from tests.clients import create_topics

CONSUME_BYTES = 512 * 2**20
ROUNDS = 3


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="odradek-bench-tls-") as tmp:
        certs = make_certs(Path(tmp) / "certs")
        plain, tls = free_port(), free_port()
        broker = BrokerProcess(Path(tmp) / "data", port=plain, overrides={
            "listeners": f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls}",
            "ssl.keystore.type": "PEM", "ssl.keystore.location": str(certs.server_keystore),
            "message.max.bytes": "2000000"}).start()
        try:
            create_topics(broker.bootstrap, ["tls"])
            count = fill_topic(broker.bootstrap, "tls", total_bytes=CONSUME_BYTES)
            pids = [broker.proc.pid]
            sides = {"PLAINTEXT": (broker.bootstrap, None),
                     "SSL": (f"127.0.0.1:{tls}", {"security.protocol": "SSL", "ssl.ca.location": str(certs.ca)})}
            best: dict[str, dict] = {}
            for _ in range(ROUNDS):
                for name, (bootstrap, security) in sides.items():
                    result = consume_throughput(bootstrap, "tls", count, pids=pids, security=security)
                    if result["mb_per_s"] > best.get(name, {}).get("mb_per_s", 0):
                        best[name] = result
            best["ssl_vs_plaintext"] = {"mb_per_s_ratio": best["SSL"]["mb_per_s"] / best["PLAINTEXT"]["mb_per_s"]}
            print(json.dumps(best, indent=2))
        finally:
            broker.kill()
