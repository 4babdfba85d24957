"""One HTTP request, one trace: webapp and users service export to a real OTLP/gRPC receiver."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from testkit.ports import free_port
from testkit.processes import LoggedProcess
from testkit.waiting import wait_for_serving

from .conftest import ADMIN_HEADERS, AUTH_ENV, START_TIMEOUT, Webapp

pytestmark = pytest.mark.slow

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver (opentelemetry-proto's service definition): keeps every span."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received = ReceivedSpan(
                        attributes.get("service.name", ""),
                        span.name,
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                    )
                    with self._lock:
                        self.spans.append(received)
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[ReceivedSpan]:
        """The spans of TRACE_ID, once there are `count` of them (bounded wait)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [s for s in self.spans if s.trace_id == TRACE_ID]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"expected {count} spans of the trace, got {self.spans}")


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    receiver = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield receiver, port
    server.stop(0)


@pytest.fixture
def traced_stack(
    receiver: tuple[Receiver, int], tmp_path: Path, spawn_webapp: Callable[..., Webapp]
) -> Iterator[tuple[LoggedProcess, Webapp]]:
    """A users service and a webapp, both exporting to the receiver, batches sent every 100 ms."""
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver[1]}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    address = f"127.0.0.1:{free_port()}"
    users = LoggedProcess(
        [sys.executable, "-m", "users_service"],
        {
            "USERS_LISTEN_ADDRESS": address,
            "USERS_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}",
            **AUTH_ENV,
            **otel,
        },
    )
    try:
        assert wait_for_serving(address, "users.v1.UserService", START_TIMEOUT), users.log()
        yield users, spawn_webapp(address, **otel)
    finally:
        users.stop()


def test_one_request_is_one_trace_across_both_services(
    receiver: tuple[Receiver, int], traced_stack: tuple[LoggedProcess, Webapp]
) -> None:
    users, webapp = traced_stack
    created = httpx.post(
        f"{webapp.url}/api/v1/users", json={"username": "traced-ada"}, headers=ADMIN_HEADERS
    )
    assert created.status_code == 201
    traceparent = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"
    reply = httpx.get(
        f"{webapp.url}/api/v1/users/{created.json()['id']}",
        headers={**ADMIN_HEADERS, "traceparent": traceparent, "x-request-id": "traced-read-1"},
    )
    assert reply.status_code == 200

    spans = {(span.service, span.name): span for span in receiver[0].wait_for(4)}
    assert len(spans) == 4, spans
    http = spans["webapp", "GET /api/v1/users/{user_id:int}"]
    client = spans["webapp", "users.v1.UserService/BatchGetUsers"]
    server = spans["users-service", "users.v1.UserService/BatchGetUsers"]
    store = spans["users-service", "store get_users"]
    # The caller's traceparent honoured, and each span the child of the one before it.
    assert http.parent_id == CALLER_SPAN_ID
    assert client.parent_id == http.span_id
    assert server.parent_id == client.span_id
    assert store.parent_id == server.span_id

    # Both services' log lines of the request carry the trace id and their own span id.
    access = json.loads(webapp.process.wait_for_line('"request_id": "traced-read-1"'))
    assert (access["trace_id"], access["span_id"]) == (TRACE_ID, http.span_id)
    rpc = json.loads(users.wait_for_line('"request_id": "traced-read-1"', "BatchGetUsers"))
    assert (rpc["trace_id"], rpc["span_id"]) == (TRACE_ID, server.span_id)


def test_an_unsampled_caller_exports_nothing_but_its_trace_id_is_logged(
    receiver: tuple[Receiver, int], traced_stack: tuple[LoggedProcess, Webapp]
) -> None:
    users, webapp = traced_stack
    reply = httpx.get(
        f"{webapp.url}/api/v1/users/1",
        headers={
            **ADMIN_HEADERS,
            "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN_ID}-00",
            "x-request-id": "unsampled",
        },
    )
    assert reply.status_code == 404
    rpc = json.loads(users.wait_for_line('"request_id": "unsampled"', "BatchGetUsers"))
    assert rpc["trace_id"] == TRACE_ID  # propagated with the sampled flag off
    traced = httpx.get(
        f"{webapp.url}/healthz", headers={"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"}
    )
    assert traced.status_code == 200
    # A sampled request made after it is exported; the unsampled one never is.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not any(
        s.trace_id == "1" * 32 for s in receiver[0].spans
    ):
        time.sleep(0.05)
    assert any(s.trace_id == "1" * 32 for s in receiver[0].spans)
    assert not [s for s in receiver[0].spans if s.trace_id == TRACE_ID]
