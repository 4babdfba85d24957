"""`userstack call`: any method the server reflects, its messages built at run time.

The method's descriptors come from the server's reflection service
(ProtoReflectionDescriptorDatabase behind a DescriptorPool), its message classes from the
MessageFactory (GetMessageClass): no stub, no .proto, as grpcurl does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from userstack_cli.errors import CliError, ExitCode


def find_method(channel: grpc.Channel, name: str) -> MethodDescriptor:
    """SERVICE/METHOD (or SERVICE.METHOD) from the server's reflection."""
    service_name, sep, method_name = name.replace("/", ".").rpartition(".")
    if not sep or not service_name or not method_name:
        raise CliError(
            f"{name!r}: expected SERVICE/METHOD, e.g. users.v1.UserService/GetUser",
            ExitCode.INVALID,
        )
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    try:
        service = pool.FindServiceByName(service_name)
    except KeyError:
        services = ", ".join(ProtoReflectionDescriptorDatabase(channel).get_services())
        raise CliError(
            f"the server reflects no service {service_name!r} (it has: {services})",
            ExitCode.NOT_FOUND,
        ) from None
    method = service.methods_by_name.get(method_name)
    if method is None:
        known = ", ".join(sorted(service.methods_by_name))
        raise CliError(
            f"{service_name} has no method {method_name!r} (it has: {known})", ExitCode.NOT_FOUND
        )
    return method


def requests_from(method: MethodDescriptor, text: str) -> list[Message]:
    """The request(s) from JSON: one object, or for a client stream an array or NDJSON lines."""
    request_class = message_factory.GetMessageClass(method.input_type)
    documents = _documents(text) if method.client_streaming else [_loads(text)]
    messages = []
    for document in documents:
        try:
            messages.append(json_format.ParseDict(document, request_class()))
        except json_format.ParseError as error:
            raise CliError(
                f"not a {method.input_type.full_name}: {error}", ExitCode.INVALID
            ) from None
    return messages


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise CliError(f"the request is not JSON: {error}", ExitCode.INVALID) from None


def _documents(text: str) -> list[Any]:
    stripped = text.strip()
    if stripped.startswith("["):
        value = _loads(stripped)
        return value if isinstance(value, list) else [value]
    return [_loads(line) for line in stripped.splitlines() if line.strip()]


def invoke(
    channel: grpc.Channel, method: MethodDescriptor, requests: list[Message], timeout: float
) -> Iterator[Message]:
    """Calls the method with the right kind of call; yields its response(s)."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    response_class = message_factory.GetMessageClass(method.output_type)
    kind = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[method.client_streaming, method.server_streaming]
    call = kind(
        path, request_serializer=_serialize, response_deserializer=response_class.FromString
    )
    argument: Message | Iterable[Message] = (
        iter(requests) if method.client_streaming else requests[0]
    )
    if method.server_streaming:
        yield from call(argument, timeout=timeout)
    else:
        yield call(argument, timeout=timeout)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()
