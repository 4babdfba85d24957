"""Scraping a service's /metrics port as Prometheus would, into samples a test can compare."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

# (sample name, sorted label pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int, host: str = "127.0.0.1") -> Samples:
    """Every sample on http://host:port/metrics.

    Example:
        >>> samples = scrape(9464)  # doctest: +SKIP
        >>> value(samples, "grpc_server_call_started_total", grpc_method="users.v1.UserService/X")
        3.0
    """
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as reply:
        return parse(reply.read().decode())


def parse(text: str) -> Samples:
    """Every sample of a page in the Prometheus text format."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample `name` with exactly these labels; 0 when absent (a series not yet created)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def series(samples: Samples, prefix: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """The series whose name starts with `prefix`."""
    return {key for key in samples if key[0].startswith(prefix)}
