"""Summaries (medians of the repetitions, with their spread), pairwise ratios, markdown and JSON."""

from __future__ import annotations

import statistics
from typing import Any

from scripts.bench.plan import Ratio, Row


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def summarize(rows: list[Row], samples: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One summary per row: median rate with min/max, median latencies, total errors..."""
    out = []
    for row in rows:
        runs = samples[row.name]
        rates = [run["rate"] for run in runs]
        out.append(
            {
                "name": row.name,
                "server": row.server,
                "unit": row.unit,
                "rate": _median(rates),
                "rate_min": min(rates),
                "rate_max": max(rates),
                "p50_ms": _median([run["p50_ms"] for run in runs]),
                "p99_ms": _median([run["p99_ms"] for run in runs]),
                "errors": sum(run["errors"] for run in runs),
                "cpu_s_per_1k": _median([run["cpu_s_per_1k"] for run in runs]),
                "cpu_s_per_1k_of": {
                    name: _median([run["cpu_s_per_1k_of"][name] for run in runs])
                    for name in row.cpu_of
                },
                "backend_calls_per_call": _median([run["backend_calls_per_call"] for run in runs]),
                "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
                "runs": runs,
            }
        )
    return out


def compare(ratios: list[Ratio], samples: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each ratio per repetition (rows measured moments apart), then their median and spread."""
    out = []
    for ratio in ratios:
        pairs = list(zip(samples[ratio.over], samples[ratio.under], strict=True))
        values = [a["rate"] / b["rate"] for a, b in pairs if b["rate"]]
        median = _median(list(values))
        # The same comparison by server CPU per call (under's / over's): steadier than rates when
        # other work shares the machine, since it does not count the time the server waited.
        by_cpu = [
            b["cpu_s_per_1k"] / a["cpu_s_per_1k"]
            for a, b in pairs
            if a["cpu_s_per_1k"] and b["cpu_s_per_1k"]
        ]
        out.append(
            {
                "over": ratio.over,
                "under": ratio.under,
                "ratio": median,
                "min": round(min(values), 3) if values else None,
                "max": round(max(values), 3) if values else None,
                "by_cpu": _median(list(by_cpu)),
                "target": ratio.target,
                "met": None if ratio.target is None or median is None else median >= ratio.target,
            }
        )
    return out


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def markdown(summary: list[dict[str, Any]], ratios: list[dict[str, Any]], header: str) -> str:
    """The ratio table, then the row table."""
    lines = [
        header,
        "",
        "| ratio | median | spread | by CPU per call | target |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in ratios:
        mark = "" if r["met"] is None else (" ok" if r["met"] else " MISSED")
        target = "-" if r["target"] is None else f">= {r['target']:g}{mark}"
        lines.append(
            f"| {r['over']} / {r['under']} | {_cell(r['ratio'])} "
            f"| {_cell(r['min'])}-{_cell(r['max'])} | {_cell(r['by_cpu'])} | {target} |"
        )
    lines += [
        "",
        "| row | rate (median) | spread | p50 ms | p99 ms | errors | CPU s / 1k | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['name']} | {s['rate']:.0f} {s['unit']} "
            f"| {s['rate_min']:.0f}-{s['rate_max']:.0f} "
            f"| {_cell(s['p50_ms'])} | {_cell(s['p99_ms'])} | {s['errors']} "
            f"| {_cell(s['cpu_s_per_1k'])} | {_cell(s['peak_rss_mb'])} |"
        )
    return "\n".join(lines + _backends(summary)) + "\n"


def _backends(summary: list[dict[str, Any]]) -> list[str]:
    """The rows with a backend: each process's share of the CPU per call, and the calls the
    backend took per call of the row (an HTTP frontend's coalesced reads: 1 / reads per call).
    Both move with the batches' sizes, which the run's timing decides, not the frontend's
    features alone: a comparison of two webapps by CPU reads these first."""
    rows = [s for s in summary if s["backend_calls_per_call"] is not None]
    if not rows:
        return []
    lines = [
        "",
        "| row | CPU s / 1k: frontend | backend | backend calls per call | reads per call |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in rows:
        front, *backends = s["cpu_s_per_1k_of"].values()
        per_call = s["backend_calls_per_call"]
        lines.append(
            f"| {s['name']} | {_cell(front)} | {_cell(sum(b or 0 for b in backends))} "
            f"| {_cell(per_call)} | {_cell(round(1 / per_call, 1) if per_call else None)} |"
        )
    return lines
