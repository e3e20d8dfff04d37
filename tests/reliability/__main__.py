"""The chaos runner: ``python -m tests.reliability [--budget-s 1800] [--scenarios a,b]
[--seed N] [--duration-s S] [--out DIR]``.

Runs the scenarios (all by default, in the order of ``SCENARIOS``; the random mix gets
what is left of the budget) one after another, each on a fresh cluster, until the
time budget is spent; a scenario that no longer fits in what is left is reported as
skipped. Prints one row per scenario: operations, sends acknowledged, anomalies found.
Every history stays under ``--out`` (default ``./chaos-out``) for
``python -m tests.reliability.checker DIR/<scenario>-<seed>/history.jsonl``.
Exit status 1 when any scenario found an anomaly (or its harness failed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from tests.reliability.scenarios import SCENARIOS, Result, run

# Seconds a scenario takes beyond its duration: cluster start, warm-up, healing, the
# producers' flush, the drain and the check.
OVERHEAD_S = 45
# How many durations each scenario's faults take, roughly (for fitting the budget).
LENGTH = {"leader-killed-5x": 3.0, "leader-stopped-5x": 3.0, "rolling-restart": 2.0,
          "coordinator-killed": 2.0, "consumer-killed": 2.0, "transactions": 1.5}


def table(results: list[Result]) -> str:
    rows = [("scenario", "seed", "seconds", "operations", "sends", "acknowledged", "info",
             "failed", "anomalies")]
    for r in results:
        rows.append((r.scenario, str(r.seed), f"{r.seconds:.0f}", str(r.operations), str(r.sends),
                     str(r.acknowledged), str(r.info), str(r.failed), r.anomaly_text))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for n, row in enumerate(rows):
        lines.append(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
                     + " | " + row[-1])
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths) + "-+-" + "-" * 9)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability",
                                     description="Run the chaos scenarios and check their histories.")
    parser.add_argument("--budget-s", type=float, default=1800, help="total time budget")
    parser.add_argument("--scenarios", default="", help="comma-separated names (default: all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration-s", type=float, default=30,
                        help="how long each scenario's faults and quiet periods last")
    parser.add_argument("--mix-s", type=float, default=0,
                        help="random-mix duration (default: what is left of the budget, at most 600)")
    parser.add_argument("--out", default="chaos-out", help="where histories are written")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(SCENARIOS))
        return 0
    names = [n for n in args.scenarios.split(",") if n] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}; --list shows them")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget_s
    results: list[Result] = []
    for name in names:
        left = deadline - time.monotonic()
        duration = args.duration_s
        if name == "random-mix":
            duration = args.mix_s or min(600.0, left - OVERHEAD_S - 30)
        need = duration * LENGTH.get(name, 1.0) + OVERHEAD_S
        if left < need or duration <= 0:
            results.append(Result(name, args.seed, skipped=f"over budget ({left:.0f} s left)"))
            print(f"== {name}: skipped, {left:.0f} s of the budget left", flush=True)
            continue
        print(f"== {name} (seed {args.seed}, {duration:.0f} s)", flush=True)
        result = run(name, out, seed=args.seed, duration_s=duration)
        results.append(result)
        print(f"   {result.anomaly_text}; {result.acknowledged}/{result.sends} acknowledged,"
              f" {result.seconds:.0f} s; {result.history}", flush=True)
        if any(result.txns):
            print("   transactions: {} committed, {} aborted, {} unknown; {} records read".format(
                *result.txns, result.values_read), flush=True)
        for line in result.anomaly_lines[:10]:
            print(f"   {line}", flush=True)
        for note in result.notes[:10]:
            print(f"   note: {note}", flush=True)
    print()
    print(table(results))
    (out / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    bad = [r for r in results if not r.ok]
    if bad:
        print(f"\n{len(bad)} scenario(s) failed: {', '.join(r.scenario for r in bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
