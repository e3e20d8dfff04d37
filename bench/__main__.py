"""Run benchmarks: ``python -m bench`` runs every module in MODULES, in order;
``python -m bench storage`` runs just the named ones (``kafka`` and ``side-by-side`` name
side_by_side, the run beside Kafka 4.4).  To add one, write ``bench/<name>.py`` with a
``main()`` and append its name to MODULES."""

from __future__ import annotations

import importlib
import sys

MODULES = ["storage", "zerocopy", "produce", "tls", "cluster", "testing", "loop_lag", "cleaner",
           "partitions", "side_by_side"]
ALIASES = {"kafka": "side_by_side", "side-by-side": "side_by_side"}


def main(argv: list[str]) -> int:
    names = [ALIASES.get(n, n) for n in argv] or MODULES
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(MODULES)}")
        return 2
    for name in names:
        print(f"== bench.{name}")
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
