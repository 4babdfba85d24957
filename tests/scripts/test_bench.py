"""scripts/bench: reading the load generators' output (captured from real runs in bench_output/),
and the plan's rows, ratios and servers (the production rows, what quick runs, what starts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The harness runs from the repository root (`python -m scripts.bench`); it is not installed.
sys.path.insert(0, str(ROOT))

from scripts.bench import grpc_load, h2load, plan, report, wrk  # noqa: E402
from scripts.bench.__main__ import FULL, QUICK  # noqa: E402
from scripts.bench.procs import Server  # noqa: E402
from scripts.bench.results import Load, percentiles_ms  # noqa: E402
from scripts.bench.runner import LogWatch, failures  # noqa: E402
from scripts.bench.servers import BACKENDS  # noqa: E402
from scripts.bench.stack import Cores, Stack  # noqa: E402

OUTPUT = Path(__file__).with_name("bench_output")
# bench_output/: the aio echo (98-byte user) under h2load -D1 -c4 -m2 (its --log-file's first
# 300 lines), one GetUsers stream of 300 users, and wrk --latency against fastapi_echo.
REPLY = 98 + 5


def test_h2load_unary_counts_replies_and_reads_p99_from_the_log_file() -> None:
    log = (OUTPUT / "h2load-unary.tsv").read_text()
    load = h2load.parse((OUTPUT / "h2load-unary.txt").read_text(), log, REPLY, timed_seconds=1)
    assert (load.calls, load.errors) == (1842, 0)
    times = sorted(int(line.split("\t")[2]) / 1000 for line in log.splitlines())
    assert load.p50_ms is not None
    assert load.p99_ms is not None
    assert times[148] <= load.p50_ms <= times[151]
    assert times[295] <= load.p99_ms <= times[-1]


def test_h2load_unary_counts_a_reply_without_its_message_as_an_error() -> None:
    out = (OUTPUT / "h2load-unary.txt").read_text()
    short = out.replace("(189726) data", f"({189726 - 3 * REPLY}) data")
    load = h2load.parse(short, (OUTPUT / "h2load-unary.tsv").read_text(), REPLY)
    assert (load.calls, load.errors) == (1839, 3)


def test_h2load_stream_latency_is_the_time_to_its_first_byte() -> None:
    out = (OUTPUT / "h2load-stream.txt").read_text()
    load = h2load.parse_stream(out, messages=300, total_bytes=300 * REPLY)
    assert (load.calls, load.errors, load.p50_ms, load.p99_ms) == (300, 0, 2.17, 2.17)
    assert round(load.seconds, 5) == 0.03859


def test_h2load_stream_short_of_its_bytes_is_one_error() -> None:
    out = (OUTPUT / "h2load-stream.txt").read_text()
    load = h2load.parse_stream(out, messages=301, total_bytes=301 * REPLY)
    assert (load.calls, load.errors) == (0, 1)


def test_wrk_reads_requests_and_its_latency_distribution() -> None:
    load = wrk.parse((OUTPUT / "wrk.txt").read_text())
    assert (load.calls, load.errors, load.p50_ms, load.p99_ms) == (2210, 0, 1.61, 5.57)


def test_wrk_counts_non_2xx_and_socket_errors() -> None:
    out = (
        (OUTPUT / "wrk.txt")
        .read_text()
        .replace(
            "Requests/sec:",
            "  Socket errors: connect 0, read 2, write 0, timeout 1\n"
            "  Non-2xx or 3xx responses: 7\nRequests/sec:",
        )
    )
    load = wrk.parse(out)
    assert (load.calls, load.errors) == (2200, 10)


def test_a_run_that_completed_nothing_is_a_failure_even_with_no_errors_counted() -> None:
    idle = wrk.parse((OUTPUT / "wrk.txt").read_text().replace("2210 requests in", "0 requests in"))
    assert (idle.calls, idle.errors) == (0, 0)
    assert failures(idle, logged_errors=0) == 1
    assert failures(Load(calls=5, seconds=1, errors=2), logged_errors=3) == 5


def test_percentiles_of_few_and_many_latencies() -> None:
    assert percentiles_ms([]) == (None, None)
    assert percentiles_ms([4.0]) == (4.0, 4.0)
    p50, p99 = percentiles_ms([float(ms) for ms in range(1, 101)])
    assert p50 == pytest.approx(50.5)
    assert p99 == pytest.approx(99.01)


@pytest.mark.parametrize("settings", [FULL, QUICK], ids=["full", "quick"])
def test_every_ratio_compares_two_rows_of_the_plan(settings: plan.Settings) -> None:
    names = [row.name for row in plan.rows(settings)]
    assert len(names) == len(set(names))
    for ratio in plan.ratios(settings):
        assert {ratio.over, ratio.under} <= set(names), ratio


@pytest.mark.parametrize("settings", [FULL, QUICK], ids=["full", "quick"])
def test_each_compared_row_is_measured_right_after_one_it_is_compared_with(
    settings: plan.Settings,
) -> None:
    rows, ratios = plan.rows(settings), plan.ratios(settings)
    ordered = [row.name for row in plan.beside_their_baselines(rows, ratios)]
    assert sorted(ordered) == sorted(row.name for row in rows)
    unders: dict[str, set[str]] = {}
    for ratio in ratios:
        unders.setdefault(ratio.over, set()).add(ratio.under)
    for i, name in enumerate(ordered):
        if name in unders:  # the rows between it and its baseline: fellow variants of that baseline
            before = ordered[:i]
            start = max(before.index(under) for under in unders[name] if under in before)
            assert all(between in unders for between in ordered[start + 1 : i]), name
    webapp = ordered.index("HTTP GET user c32 webapp")
    assert ordered[webapp + 1 : webapp + 4] == [
        "HTTP GET user c32 webapp-metrics",
        "HTTP GET user c32 webapp-unsampled",
        "HTTP GET user c32 webapp-sampled",
    ]


@pytest.mark.parametrize("settings", [FULL, QUICK], ids=["full", "quick"])
def test_production_rows_face_their_plaintext_rows_with_the_same_client(
    settings: plan.Settings,
) -> None:
    prod = {r.over: r for r in plan.ratios(settings) if "-prod" in r.over}
    expected = {f"GetUser c{c} users-prod (aio client)" for c in settings.concurrencies}
    expected |= {f"HTTP GET user c{c} webapp-prod" for c in settings.concurrencies}
    expected |= {
        f"CreateUser c{max(settings.concurrencies)} users-prod (aio client)",
        "GetUsers stream users-prod (aio client)",
        "ExportUsers stream users-prod (aio client)",
    }
    assert set(prod) == expected
    for name, ratio in prod.items():
        assert ratio.target == plan.PROD_BAR
        assert ratio.under == name.replace("-prod", "")


def test_every_row_runs_on_defined_servers_and_counts_its_webapps_backend(tmp_path: Path) -> None:
    stack = Stack(tmp_path, Cores.split(pin=False), stream_users=10)
    for row in plan.rows(FULL):
        assert {row.server, *row.cpu_of} <= stack.specs.keys(), row.name
        if row.server.startswith("webapp"):
            assert row.cpu_of == (row.server, BACKENDS[row.server])


def test_the_control_webapp_is_the_default_one_measured_after_every_variant(
    tmp_path: Path,
) -> None:
    specs = Stack(tmp_path, Cores.split(pin=False), stream_users=10).specs
    control, webapp = specs[plan.CONTROL], specs["webapp"]
    assert (control.args, control.needs, control.caller) == (webapp.args, webapp.needs, None)
    differ = {k for k in control.env.keys() | webapp.env.keys()
              if control.env.get(k) != webapp.env.get(k)}  # fmt: skip
    assert differ == {"WEBAPP_SECRET_KEY"}  # drawn per server; the rest the same
    rows, ratios = plan.rows(FULL), plan.ratios(FULL)
    assert plan.Ratio(f"HTTP GET user c32 {plan.CONTROL}", "HTTP GET user c32 webapp") in ratios
    ordered = [row.name for row in plan.beside_their_baselines(rows, ratios)]
    variants = [i for i, name in enumerate(ordered) if name.startswith("HTTP GET user c32 webapp-")]
    assert ordered[max(variants)] == f"HTTP GET user c32 {plan.CONTROL}"


def test_a_webapp_row_reports_each_process_s_cpu_and_its_backend_s_calls_per_request(
    tmp_path: Path,
) -> None:
    """The users service logs a line per call (LogWatch counts them, failures apart); the
    report shows a frontend's CPU and its backend's, and the reads each backend call carried."""
    log = tmp_path / "users-backend.log"
    log.write_text('{"message": "starting"}\n')
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    watch = LogWatch(Server("users-backend", proc, 0, log))
    rpc = '{{"logger": "users_service.calls", "method": "/users.v1.UserService/{}", '
    rpc += '"code": "{}"}}\n'
    with log.open("a") as lines:
        lines.write(rpc.format("BatchGetUsers", "OK") * 3 + rpc.format("GetUser", "NOT_FOUND"))
    assert watch.lines() == (4, 1)
    assert watch.lines() == (0, 0)  # since the last look
    row = plan.Row("HTTP GET user c32 webapp", "webapp", "requests/s", lambda _: Load(0, 1, 0),
                   ("webapp", "users-backend"))  # fmt: skip
    runs = [
        {"rate": 100.0, "p50_ms": 1.0, "p99_ms": 2.0, "errors": 0, "cpu_s_per_1k": 0.3,
         "cpu_s_per_1k_of": {"webapp": 0.24, "users-backend": 0.06},
         "backend_calls_per_call": 0.125, "peak_rss_mb": 80.0},
    ]  # fmt: skip
    summary = report.summarize([row], {row.name: runs})
    assert summary[0]["cpu_s_per_1k_of"] == {"webapp": 0.24, "users-backend": 0.06}
    table = report.markdown(summary, [], "header")
    assert "| HTTP GET user c32 webapp | 0.24 | 0.06 | 0.125 | 8 |" in table


def test_production_servers_run_compose_s_features(tmp_path: Path) -> None:
    specs = Stack(tmp_path, Cores.split(pin=False), stream_users=10).specs
    users = specs["users-prod"]
    assert users.env["USERS_TLS_CLIENT_AUTH"] == "require"
    assert users.env["USERS_AUTH_ENFORCED"] == "true"
    assert users.env["USERS_METRICS_LISTEN_ADDRESS"]
    assert users.env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert (users.caller, users.client_cert) == ("member", True)
    assert specs["users-prod-writes"].caller == "admin"
    webapp = specs["webapp-prod"].env
    assert webapp["WEBAPP_USERS_TLS_CERT_FILE"]
    assert webapp["WEBAPP_METRICS_LISTEN_ADDRESS"]
    assert "{port:users-prod-backend}" in webapp["WEBAPP_USERS_TARGET"]
    assert specs["users-prod-backend"].env == users.env


def test_a_run_starts_only_the_servers_its_rows_need(tmp_path: Path) -> None:
    stack = Stack(tmp_path, Cores.split(pin=False), stream_users=10)
    needed = stack.needed({"webapp-prod"})
    # its backend (seeded users), the trace sink, and users-auth for the member's token
    assert needed == {"webapp-prod", "users-prod-backend", "users", "otlp-sink", "users-auth"}
    assert stack.needed({"aio"}) == {"aio"}


def test_a_full_run_warms_each_server_up_with_its_first_row() -> None:
    rows = plan.rows(FULL)
    warm = plan.warm_ups(rows)
    assert {row.server for row in warm} == {row.server for row in rows}
    assert len(warm) == len({row.server for row in rows})  # one row a server
    for row in warm:
        assert row is next(r for r in rows if r.server == row.server)
    assert "webapp-unsampled" in {row.server for row in warm}


def test_quick_runs_the_rows_of_every_ratio_with_a_bar_and_no_other() -> None:
    rows = plan.rows(QUICK)
    barred = [r for r in plan.ratios(QUICK) if r.target is not None]
    quick = {row.name for row in plan.barred(rows, plan.ratios(QUICK))}
    assert quick == {name for r in barred for name in (r.over, r.under)}
    assert "GetUser c32 aio-uvloop" not in quick


def _client(seconds: float, user_id: int) -> dict[str, Any]:
    return {
        "processes": 1, "concurrency": 2, "seconds": seconds, "cores": None,
        "user_id": user_id, "users": 300,
    }  # fmt: skip


def test_the_aio_client_times_each_call_and_a_stream_to_its_first_message(tmp_path: Path) -> None:
    echo = Server.start(
        "aio", ["-m", "scripts.bench.peers.aio_echo", "--port={port}", "--stream-users=300"],
        {}, None, tmp_path,
    )  # fmt: skip
    try:
        port = echo.port
        calls = grpc_load.run("get", port, **_client(seconds=0.5, user_id=4242))
        stream = grpc_load.run("stream", port, **_client(seconds=30, user_id=4242))
        wrong = grpc_load.run("get", port, **_client(seconds=0.2, user_id=7))
    finally:
        echo.stop()
    assert calls.errors == 0
    assert calls.calls > 10
    assert calls.p50_ms is not None
    assert calls.p99_ms is not None
    assert 0 < calls.p50_ms <= calls.p99_ms
    assert (stream.calls, stream.errors) == (300, 0)
    assert stream.p99_ms == stream.p50_ms  # one stream: one time to its first message
    assert stream.p50_ms is not None
    assert stream.p50_ms < stream.seconds * 1000
    assert wrong.calls == 0  # the echo answers user 4242 whatever is asked: a wrong reply
    assert wrong.errors > 0
