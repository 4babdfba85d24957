"""Fuzzing every method of every service the server exposes: messages generated from the
descriptors (boundary values, long strings, long lists, deep nesting) and raw mutated bytes.

No call may end UNKNOWN, INTERNAL or DATA_LOSS; afterwards the server's log holds no traceback,
it still reports SERVING, and its RSS has grown by a bounded amount. Bounded in count
(USERS_FUZZ_EXAMPLES per method, default 40) and in time (each call has a short deadline).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor, message_factory
from google.protobuf.descriptor import FieldDescriptor as F
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testkit.channels import sync_channel
from testkit.processes import memory_kb
from testkit.tokens import TestIssuer
from users.v1 import users_pb2

from .conftest import ServerProcess

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("USERS_FUZZ_EXAMPLES", "40"))
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}
CALL_TIMEOUT = 2.0
STREAM_TIMEOUT = 0.3  # streams that never end (WatchUsers, Health/Watch) end here
MAX_RSS_GROWTH_MB = 50

# Every service the server may expose, by the name reflection lists, with its descriptor
# (reflection v1 is v1alpha renamed: the same messages on the wire).
SERVICES: dict[str, descriptor.ServiceDescriptor] = {
    "users.v1.UserService": users_pb2.DESCRIPTOR.services_by_name["UserService"],
    "users.v1.AuthService": users_pb2.DESCRIPTOR.services_by_name["AuthService"],
    "grpc.health.v1.Health": health_pb2.DESCRIPTOR.services_by_name["Health"],
    "grpc.reflection.v1alpha.ServerReflection": reflection_pb2.DESCRIPTOR.services_by_name[
        "ServerReflection"
    ],
    "grpc.reflection.v1.ServerReflection": reflection_pb2.DESCRIPTOR.services_by_name[
        "ServerReflection"
    ],
}
METHODS = [
    (f"/{name}/{method.name}", method)
    for name, service in SERVICES.items()
    for method in service.methods
]

_INTS = {
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
}
_STRINGS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "ada", "ADA", "a" * 33, "x" * 300, "é" * 20, "\x00", "%_\\", "../"]),
    st.builds(lambda n: "u" * n, st.integers(1000, 30_000)),
)


def _scalar(field: descriptor.FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type in _INTS:
        low, high = _INTS[field.type]
        return st.one_of(
            st.sampled_from([0, 1, -1 if low else 2, low, high]), st.integers(low, high)
        )
    if field.type == F.TYPE_BOOL:
        return st.booleans()
    if field.type == F.TYPE_STRING:
        return _STRINGS
    if field.type == F.TYPE_BYTES:
        return st.binary(max_size=64)
    if field.type == F.TYPE_ENUM:
        return st.integers(-3, 10)
    if field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.floats(width=32 if field.type == F.TYPE_FLOAT else 64)
    raise AssertionError(f"no strategy for {field.full_name} (type {field.type})")


def _field(field: descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        one: st.SearchStrategy[Any] = message(field.message_type, depth + 1)
    else:
        one = _scalar(field)
    if not field.is_repeated:
        return one
    small = st.lists(one, max_size=4)
    if field.type == F.TYPE_MESSAGE:
        return small
    long = st.builds(lambda value, n: [value] * n, one, st.sampled_from([1000, 1001, 5000]))
    return st.one_of(small, long)


def message(desc: descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """Messages of type `desc` with any subset of fields set (nesting cut at depth 3)."""
    cls = message_factory.GetMessageClass(desc)
    if depth > 3:
        return st.just(cls())
    fields = [(f, st.none() | _field(f, depth)) for f in desc.fields]

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        built = cls()
        for field, values in fields:
            _set(built, field, draw(values))
        return built

    return build()


def _set(built: Any, field: descriptor.FieldDescriptor, value: Any) -> None:
    if value is None:
        return
    target = getattr(built, field.name)
    if field.is_repeated and field.type == F.TYPE_MESSAGE:
        for item in value:
            target.add().CopyFrom(item)
    elif field.is_repeated:
        target.extend(value)
    elif field.type == F.TYPE_MESSAGE:
        target.CopyFrom(value)
    else:
        setattr(built, field.name, value)


def mutated(raw: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """`raw` truncated, with bytes flipped or inserted, or random bytes, or a deep nesting."""
    return st.one_of(
        st.builds(lambda b, n: b[: n % (len(b) + 1)], raw, st.integers(0, 1 << 16)),
        st.builds(_flip, raw, st.integers(0, 1 << 16), st.integers(1, 255)),
        st.builds(
            lambda b, junk, n: b[: n % (len(b) + 1)] + junk + b,
            raw,
            st.binary(max_size=8),
            st.integers(0, 1 << 16),
        ),
        st.binary(max_size=256),
        st.sampled_from([b"\x0b" * 3000 + b"\x0c" * 3000, b"\x0a\x80\x80\x80\x80\x10", b"\x0c"]),
    )


def _flip(raw: bytes, at: int, mask: int) -> bytes:
    if not raw:
        return raw
    index = at % len(raw)
    return raw[:index] + bytes([raw[index] ^ mask]) + raw[index + 1 :]


def payloads(method: descriptor.MethodDescriptor) -> st.SearchStrategy[list[bytes]]:
    """What a call sends: one message, or (client streaming) one to three of them."""
    valid = message(method.input_type).map(lambda m: m.SerializeToString())
    one = st.one_of(valid, mutated(valid))
    return (
        st.lists(one, min_size=1, max_size=3) if method.client_streaming else one.map(lambda p: [p])
    )


def call(
    channel: grpc.Channel, path: str, method: descriptor.MethodDescriptor, sent: list[bytes]
) -> grpc.StatusCode:
    """Makes the call with raw bytes; the code it ended with."""
    try:
        if not method.server_streaming:
            callable_ = (
                channel.stream_unary(path) if method.client_streaming else channel.unary_unary(path)
            )
            callable_(iter(sent) if method.client_streaming else sent[0], timeout=CALL_TIMEOUT)
            return grpc.StatusCode.OK
        factory = (
            channel.stream_stream(path) if method.client_streaming else channel.unary_stream(path)
        )
        responses = factory(
            iter(sent) if method.client_streaming else sent[0], timeout=STREAM_TIMEOUT
        )
        for count, _ in enumerate(responses):
            if count >= 5:
                responses.cancel()
                break
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, test_issuer: TestIssuer, admin_token: str
) -> Iterator[tuple[ServerProcess, grpc.Channel, int]]:
    """One server for the module, with no write or import rate limit (to reach the store),
    called as an admin (past the access check, into every handler); cheap password hashes."""
    db = tmp_path_factory.mktemp("fuzz") / "users.db"
    server = ServerProcess(
        db,
        test_issuer,
        USERS_WRITES_PER_SECOND="0",
        USERS_IMPORTS_PER_MINUTE="0",
        USERS_SIGNUP_OPEN="true",
        USERS_HASH_MEMORY_KIB="8192",
        USERS_HASH_TIME_COST="1",
    )
    channel = sync_channel(server.target, token=admin_token)
    try:
        health = health_pb2_grpc.HealthStub(channel)
        health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        yield server, channel, memory_kb(server.process.pid, "VmRSS")
    finally:
        channel.close()
        server.stop()


def test_every_served_service_is_fuzzed(fuzzed: tuple[ServerProcess, grpc.Channel, int]) -> None:
    call_ = fuzzed[1].stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    [answer] = list(call_(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    served = {service.name for service in answer.list_services_response.service}
    assert served <= set(SERVICES), f"not fuzzed: {served - set(SERVICES)}"


@pytest.mark.parametrize(("path", "method"), METHODS, ids=[path for path, _ in METHODS])
def test_no_generated_or_mutated_message_ends_unknown(
    fuzzed: tuple[ServerProcess, grpc.Channel, int], path: str, method: descriptor.MethodDescriptor
) -> None:
    _, channel, _ = fuzzed

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(payloads(method))
    def probe(sent: list[bytes]) -> None:
        code = call(channel, path, method, sent)
        assert code not in FORBIDDEN, f"{path} ended {code.name} for {[p[:60] for p in sent]}"

    probe()


def test_the_server_is_whole_after_the_fuzzing(
    fuzzed: tuple[ServerProcess, grpc.Channel, int],
) -> None:
    server, channel, baseline_kb = fuzzed
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="users.v1.UserService"), timeout=10
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    log = "".join(server.lines)
    assert "Traceback" not in log, log[-3000:]
    assert '"level": "ERROR"' not in log
    growth_mb = (memory_kb(server.process.pid, "VmRSS") - baseline_kb) / 1024
    print(f"fuzz: {len(METHODS)} methods x {EXAMPLES} examples; server RSS +{growth_mb:.1f} MiB")
    assert growth_mb < MAX_RSS_GROWTH_MB
