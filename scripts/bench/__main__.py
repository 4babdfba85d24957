"""`python -m scripts.bench [--quick]`: run the benchmark, print the tables, write the results.

Results go to bench/results/latest.json and latest.md (docs/performance.md quotes a run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

from scripts.bench import plan, report, runner, starvation
from scripts.bench.stack import Cores, Stack

RESULTS = Path("bench/results")
FULL = plan.Settings(seconds=4, repetitions=3, concurrencies=(32, 128), stream_users=100_000)
QUICK = plan.Settings(seconds=1, repetitions=1, concurrencies=(32,), stream_users=5_000)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="the rows of the ratios with a bar, once, briefly"
    )
    parser.add_argument("--no-pin", action="store_true", help="no pinning to cores")
    parser.add_argument("--only", default="", help="run only rows whose name matches this regex")
    parser.add_argument("--repetitions", type=int, help="override the repetitions")
    parser.add_argument("--seconds", type=float, help="override the seconds per run")
    parser.add_argument("--keep", type=Path, help="keep the servers' logs and database here")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where latest.json/md go")
    return parser.parse_args()


def main() -> None:
    args = parse()
    settings = QUICK if args.quick else FULL
    overrides = {"repetitions": args.repetitions, "seconds": args.seconds}
    settings = plan.Settings(**{**vars(settings), **{k: v for k, v in overrides.items() if v}})
    every = [*plan.rows(settings), *starvation.rows(settings, quick=args.quick)]
    rows = [row for row in every if re.search(args.only, row.name)]
    if args.quick and not args.only:  # the rows of the comparisons with a bar (the goals)
        rows = plan.barred(rows, plan.ratios(settings))
    names = {row.name for row in rows}
    ratios = [r for r in plan.ratios(settings) if r.over in names and r.under in names]
    rows = plan.beside_their_baselines(rows, ratios)
    servers = {name for row in rows for name in (row.server, *row.cpu_of)} - {starvation.SERVER}
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="userstack-bench-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        with Stack(workdir, Cores.split(pin), settings.stream_users, servers) as stack:
            starvation.start(stack, rows)
            # A run of several repetitions warms every server up first (bench-quick's one
            # second per row is a smoke test: it stays under a minute).
            warm = plan.warm_ups(rows) if settings.repetitions > 1 else []
            samples = runner.run_all(stack, rows, settings.repetitions, warm)
    summary = report.summarize(rows, samples)
    compared = report.compare(ratios, samples)
    header = (
        f"userstack bench ({'quick' if args.quick else 'full'}): {time.strftime('%Y-%m-%d %H:%M')}"
        f" UTC, {os.cpu_count()} CPUs, servers pinned: {pin}, load average at the end "
        f"{os.getloadavg()[0]:.2f}, {settings.repetitions} repetition(s) of {settings.seconds:g} s"
        f", took {time.monotonic() - started:.0f} s"
    )
    latency = starvation.verdicts(summary)
    table = report.markdown(summary, compared, header) + starvation.markdown(latency)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(table)
    document = {
        "header": header,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "pinned": pin},
        "settings": vars(settings),
        "ratios": compared,
        "latency_targets": latency,
        "rows": summary,
    }
    (args.out / "latest.json").write_text(json.dumps(document, indent=2) + "\n")
    print(table)
    errors = sum(s["errors"] for s in summary)
    if errors:
        sys.exit(f"{errors} calls failed: see the errors column")


if __name__ == "__main__":
    main()
