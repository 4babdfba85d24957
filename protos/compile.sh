#!/bin/sh
# Compiles users/v1/users.proto into the users.v1 package beside it: messages, gRPC stubs, and a
# descriptor set with source info (the server's reflection serves the .proto comments from it).
# One command for `make protos` and both image builds; extra protoc flags (stub flavours) pass through:
#   protos/compile.sh --mypy_out=. --mypy_grpc_out=.     (typed stubs for editors and mypy)
set -eu
cd "$(dirname "$0")"
exec "${PYTHON:-python}" -m grpc_tools.protoc -I . \
    --python_out=. --grpc_python_out=. \
    --descriptor_set_out=users/v1/users.binpb --include_source_info --include_imports \
    "$@" users/v1/users.proto
