"""Run benchmarks: ``python -m bench`` runs every module in MODULES, in order;
``python -m bench storage`` runs just the named ones.  To add one, write
``bench/<name>.py`` with a ``main()`` and append its name to MODULES."""

from __future__ import annotations

import importlib
import sys

MODULES = ["storage", "zerocopy", "produce", "cluster", "testing", "loop_lag"]


def main(argv: list[str]) -> int:
    names = argv or MODULES
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
