"""Server reflection under both names: v1alpha (the library) and v1 (the same code, renamed)."""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
# Written by `protoc --descriptor_set_out --include_source_info --include_imports` next to the
# generated modules: the only place the .proto comments survive into a running server.
DESCRIPTOR_SET_RESOURCE = "users.binpb"
_V1ALPHA_PACKAGE = ".grpc.reflection.v1alpha."
_V1_PACKAGE = ".grpc.reflection.v1."


def _v1_file() -> descriptor_pb2.FileDescriptorProto:
    """grpc/reflection/v1/reflection.proto: v1alpha renamed (same messages, numbers and wire)."""
    proto = descriptor_pb2.FileDescriptorProto()
    v1alpha_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):
                field.type_name = field.type_name.replace(_V1ALPHA_PACKAGE, _V1_PACKAGE)
    for method in proto.service[0].method:
        method.input_type = method.input_type.replace(_V1ALPHA_PACKAGE, _V1_PACKAGE)
        method.output_type = method.output_type.replace(_V1ALPHA_PACKAGE, _V1_PACKAGE)
    return proto


def _register_v1_in_default_pool() -> None:
    pool = descriptor_pool.Default()
    try:
        pool.FindServiceByName(V1_SERVICE_NAME)
    except KeyError:
        pool.AddSerializedFile(_v1_file().SerializeToString())


def load_descriptor_set() -> bytes | None:
    """The users.v1 descriptor set with source comments, when `make protos` wrote one."""
    resource = importlib.resources.files("users.v1").joinpath(DESCRIPTOR_SET_RESOURCE)
    return resource.read_bytes() if resource.is_file() else None


class _ReflectionServicer(reflection.aio.ReflectionServicer):  # type: ignore[misc]
    """The library's servicer, answering with the descriptor set's own files (with comments).

    A DescriptorPool drops source_code_info, so the files are swapped back in by name. It also
    finds methods (`users.v1.UserService.CreateUser`, as `grpcurl describe` asks), which the
    pool alone cannot.
    """

    def __init__(
        self, names: Iterable[str], pool: Any = None, originals: dict[str, bytes] | None = None
    ) -> None:
        super().__init__(names, pool=pool)
        self._originals = originals or {}

    def _commented(self, response: Any) -> Any:
        files = response.file_descriptor_response.file_descriptor_proto
        for index, serialized in enumerate(files):
            name = descriptor_pb2.FileDescriptorProto.FromString(serialized).name
            files[index] = self._originals.get(name, serialized)
        return response

    def _file_by_filename(self, request: Any, filename: str) -> Any:
        return self._commented(super()._file_by_filename(request, filename))

    def _file_containing_symbol(self, request: Any, symbol: str) -> Any:
        owner = _service_of_method(self._pool, symbol) or symbol
        return self._commented(super()._file_containing_symbol(request, owner))


def _service_of_method(pool: Any, symbol: str) -> str | None:
    """The service `symbol` is a method of, or None when it is not a method."""
    service, _, method = symbol.rpartition(".")
    try:
        return service if method in pool.FindServiceByName(service).methods_by_name else None
    except KeyError:
        return None


def _servicer(names: tuple[str, ...], descriptor_set: bytes | None) -> Any:
    if descriptor_set is None:
        return _ReflectionServicer(names)
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set).file
    originals = {file.name: file.SerializeToString() for file in files}
    return _ReflectionServicer(names, _pool_with(originals.values()), originals)


def _pool_with(files: Iterable[bytes]) -> Any:
    """A pool of the descriptor set's files plus health, both reflections and error details.

    google.rpc.BadRequest rides in error details: served here, clients such as grpcurl decode it.
    """
    pool = descriptor_pool.DescriptorPool()
    for file in files:
        pool.AddSerializedFile(file)
    for module in (health_pb2, v1alpha_pb2, error_details_pb2):
        _add_file(pool, module.DESCRIPTOR)
    pool.AddSerializedFile(_v1_file().SerializeToString())
    return pool


def _add_file(pool: Any, file: Any) -> None:
    """Adds a compiled file to `pool`, after the files it imports; skips what is there."""
    try:
        pool.FindFileByName(file.name)
    except KeyError:
        for dependency in file.dependencies:
            _add_file(pool, dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        pool.AddSerializedFile(proto.SerializeToString())


def enable_reflection(
    server: Any, service_names: Iterable[str], descriptor_set: bytes | None = None
) -> None:
    """Serves reflection for `service_names` (plus both reflection services) on `server`.

    With a descriptor set (see load_descriptor_set) the answers carry the .proto comments.
    """
    _register_v1_in_default_pool()
    names = (*service_names, reflection.SERVICE_NAME, V1_SERVICE_NAME)
    servicer = _servicer(names, descriptor_set)
    method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=v1alpha_pb2.ServerReflectionRequest.FromString,
        response_serializer=v1alpha_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        tuple(
            grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": method})
            for name in (reflection.SERVICE_NAME, V1_SERVICE_NAME)
        )
    )
