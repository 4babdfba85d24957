"""plumbing.loop_metrics: the families built at scrape time are exactly prometheus-client's own
for the same observations, and a scrape while the loop's thread records sees consistent counts."""

from __future__ import annotations

import random
import re
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from plumbing.loop_metrics import LoopCounter, LoopHistogram
from plumbing.metrics import DURATION_BUCKETS, CallMetrics
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import metrics as client_metrics
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from testkit.metrics import Samples, parse, value

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 100)
# Every bound itself (le is inclusive), between two, 0, beyond the last, and a spread of calls.
EDGES = [0.0, *DURATION_BUCKETS, 0.0003, 0.7, 10.000001, 42.0]


def observations(seed: int) -> list[tuple[str, str, float]]:
    pick = random.Random(seed)
    spread = [pick.lognormvariate(-7.5, 1.5) for _ in range(2000)]
    return [
        (pick.choice(("pkg.S/Get", "pkg.S/List")), pick.choice(("OK", "NOT_FOUND")), seconds)
        for seconds in [*EDGES, *spread]
    ]


def record_both(seed: int) -> tuple[CollectorRegistry, CollectorRegistry]:
    """prometheus-client's Counter and Histograms, and ours, given the same observations."""
    theirs, ours = CollectorRegistry(auto_describe=True), CollectorRegistry(auto_describe=True)
    labels = ["grpc_method", "grpc_status"]
    duration = Histogram("d_seconds", "D.", labels, buckets=DURATION_BUCKETS, registry=theirs)
    loop_duration = LoopHistogram(
        "d_seconds", "D.", labels, buckets=DURATION_BUCKETS, registry=ours
    )
    started = Counter("s", "S.", ["grpc_method"], registry=theirs)
    loop_started = LoopCounter("s", "S.", ["grpc_method"], registry=ours)
    batch = Histogram("b", "B.", buckets=BATCH_BUCKETS, registry=theirs)
    loop_batch = LoopHistogram("b", "B.", buckets=BATCH_BUCKETS, registry=ours)
    total = Counter("t", "T.", registry=theirs)
    loop_total = LoopCounter("t", "T.", registry=ours)
    for method, code, seconds in observations(seed):
        duration.labels(method, code).observe(seconds)
        loop_duration.labels(method, code).observe(seconds)
        started.labels(method).inc()
        loop_started.labels(method).inc()
        size = int(seconds * 100_000) % 130
        batch.observe(size)
        loop_batch.observe(size)
        total.inc()
        loop_total.inc()
    return theirs, ours


def without_creation_times(page: bytes) -> str:
    """The page with each `_created` sample's value (the time its series was made) blanked."""
    return re.sub(r"(_created(\{[^}]*\})? )\S+", r"\1T", page.decode())


@pytest.fixture
def created_series() -> Iterator[None]:
    """Restores prometheus-client's `_created` switch after a test that turns it off."""
    was_on = bool(getattr(client_metrics, "_use_created", True))
    yield
    if was_on:
        client_metrics.enable_created_metrics()  # type: ignore[no-untyped-call]
    else:
        client_metrics.disable_created_metrics()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("seed", [1, 2])
def test_the_exposition_is_prometheus_clients_own_for_the_same_observations(seed: int) -> None:
    theirs, ours = record_both(seed)
    for generate in (generate_latest, generate_openmetrics):
        page = without_creation_times(generate(ours))
        assert page == without_creation_times(generate(theirs))
    # Not vacuous: every bucket, count, sum and creation time is on the page.
    page = generate_latest(ours).decode()
    assert page.count("d_seconds_bucket{") == 4 * (len(DURATION_BUCKETS) + 1)
    assert 'b_bucket{le="+Inf"} 2021.0' in page
    assert page.count("_created") >= 4 + 2 + 1 + 1


def test_creation_times_are_left_out_when_prometheus_client_is_told_to(
    created_series: None,
) -> None:
    client_metrics.disable_created_metrics()  # type: ignore[no-untyped-call]
    theirs, ours = record_both(3)
    assert "_created" not in generate_latest(ours).decode()
    assert generate_latest(ours) == generate_latest(theirs)


def test_a_series_is_exposed_once_made_and_an_unlabelled_one_from_the_start() -> None:
    registry = CollectorRegistry(auto_describe=True)
    labelled = LoopHistogram("l", "L.", ["m"], buckets=(1.0,), registry=registry)
    LoopHistogram("u", "U.", buckets=(1.0,), registry=registry)
    page = generate_latest(registry).decode()
    assert "l_bucket" not in page
    assert 'u_bucket{le="+Inf"} 0.0' in page
    labelled.labels("x")
    assert 'l_bucket{le="+Inf",m="x"} 0.0' in generate_latest(registry).decode()
    with pytest.raises(ValueError, match="expected labels"):
        labelled.labels("x", "y")
    with pytest.raises(ValueError, match="Duplicated"):
        LoopCounter("l", "Again.", registry=registry)


LES = [*(repr(float(bound)) for bound in DURATION_BUCKETS), "+Inf"]  # as Go writes these


def consistent(samples: Samples, seconds: float) -> tuple[float, float]:
    """Checks one scrape of the call metrics; its (count, started)."""
    method, labels = "pkg.S/Get", {"grpc_method": "pkg.S/Get", "grpc_status": "OK"}
    name = "grpc_server_call_duration_seconds"
    count = value(samples, f"{name}_count", **labels)
    buckets = [value(samples, f"{name}_bucket", **labels, le=le) for le in LES]
    assert buckets == sorted(buckets), "cumulative buckets never go down"
    assert buckets[-1] == count, "+Inf is the count, from the same snapshot"
    # The sum is in the snapshot too: at most the observation being recorded apart.
    assert abs(value(samples, f"{name}_sum", **labels) - count * seconds) <= seconds * 1.001
    started = value(samples, "grpc_server_call_started_total", grpc_method=method)
    # The histogram is collected before the counter: a call it counts is counted as started.
    assert started >= count
    assert value(samples, "grpc_server_calls_in_flight") in (0, 1)
    return count, started


def test_a_scrape_while_the_loop_thread_records_sees_consistent_counts() -> None:
    """The recording thread (here the test's, as the event loop's in a service) records calls
    while another builds the page as prometheus-client's HTTP thread does (generate_latest),
    the GIL switching between them every microsecond: collect() is interrupted mid-family."""
    registry = CollectorRegistry()
    calls = CallMetrics(registry, "server")
    seconds = 0.0007  # one value: the sum must be count x it
    pages: list[bytes] = []
    done = threading.Event()

    def scraper() -> None:
        while not done.is_set() and len(pages) < 5000:  # bounded
            pages.append(generate_latest(registry))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=scraper)
    recorded = 0
    try:
        thread.start()
        deadline = time.monotonic() + 60
        while (len(pages) < 1000 and time.monotonic() < deadline) or recorded < 10_000:
            calls.started("/pkg.S/Get")
            calls.ended("/pkg.S/Get", "OK", seconds)
            recorded += 1
        during = len(pages)
        done.set()
        thread.join(timeout=30)
    finally:
        sys.setswitchinterval(interval)
        done.set()
    assert during >= 1000, "too few scrapes while recording to show anything"
    counts = [consistent(parse(page.decode()), seconds) for page in pages[:during]]
    assert [c for c, _ in counts] == sorted(c for c, _ in counts), "a count went down"
    assert 0 < counts[during // 2][0] < recorded, "scraped while recording"
    final = parse(generate_latest(registry).decode())
    assert consistent(final, seconds) == (recorded, recorded)
