# Both images, users (the gRPC service) and webapp (the HTTP frontend), from one builder. Build from
# the repository root (it compiles the shared protos/); SERVICE is the directory under services/,
# and the stage of the same name is the image (compose.yaml passes both):
#   docker build --build-arg SERVICE=users --target users -t userstack/users:dev .
#   docker build --build-arg SERVICE=webapp --target webapp -t userstack/webapp:dev .
# BASE_IMAGE: the official slim image where a registry answers, a local one where none does
# (`make base-image`). Builder and runtime must share it: the venv links to its python3.
ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG SERVICE

FROM ${BASE_IMAGE} AS builder
ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PATH=/opt/tools/bin:$PATH
WORKDIR /src
# With wheels in the wheelhouse (`make wheelhouse`) pip and `uv pip` install offline from it, as CI
# must (HTTPS fails inside builds there); with an empty wheelhouse they use the package index.
# (uv's offline settings go to a file only `uv pip` reads: `uv export` would re-resolve under them.)
COPY wheelhouse/ /wheelhouse/
RUN mkdir -p /etc/uv && touch /etc/uv/pip.toml \
    && if ls /wheelhouse/*.whl >/dev/null 2>&1; then \
        printf '[global]\nno-index = true\nfind-links = /wheelhouse\n' >/etc/pip.conf \
        && printf 'no-index = true\nfind-links = ["/wheelhouse"]\n' >/etc/uv/pip.toml; \
    fi \
    && python3 -m venv /opt/tools \
    && pip install --quiet -r /wheelhouse/build-tools.txt
# Third-party dependencies first (a layer that survives source edits), pinned by the same uv.lock
# for the runtime venv and for grpcio-tools (the protos group), so generated code matches grpcio.
COPY pyproject.toml uv.lock ./
COPY protos/pyproject.toml protos/
COPY libs/plumbing/pyproject.toml libs/plumbing/
COPY libs/testkit/pyproject.toml libs/testkit/
COPY services/users/pyproject.toml services/users/
COPY services/webapp/pyproject.toml services/webapp/
COPY clients/cli/pyproject.toml clients/cli/
RUN uv export --quiet --locked --only-group protos -o /tmp/protos.txt \
    && uv pip install --config-file /etc/uv/pip.toml --quiet --python /opt/tools/bin/python -r /tmp/protos.txt
# The users image also carries `userstack`, the command-line client (clients/cli, docs/cli.md), its
# dependencies locked with the service's.
# Everything above is the same for both images (one set of layers in the cache); from here on the
# steps depend on SERVICE, the directory under services/ (the first step that uses an ARG is the
# first whose cache is per value).
ARG SERVICE
RUN test -n "$SERVICE" -a -f "services/$SERVICE/pyproject.toml" \
        || { echo "error: build with --build-arg SERVICE=users or SERVICE=webapp" >&2; exit 1; } \
    && packages="--project services/$SERVICE" \
    && if [ "$SERVICE" = users ]; then \
        packages="--package users-service --package userstack-cli"; fi \
    && uv export --quiet --locked --no-dev $packages --no-emit-workspace -o /tmp/runtime.txt \
    && uv venv --quiet --python python3 /opt/venv \
    && uv pip install --config-file /etc/uv/pip.toml --quiet --python /opt/venv/bin/python -r /tmp/runtime.txt
COPY protos/ protos/
COPY libs/plumbing/ libs/plumbing/
COPY services/${SERVICE}/src/ services/${SERVICE}/src/
COPY clients/cli/ clients/cli/
# Generate the stubs and the descriptor set (reflection serves the .proto comments from it) with
# the script `make protos` uses, then install userstack-protos, userstack-plumbing and the service
# as wheels (not editable): the generated files are hatch artifacts of the protos wheel. The last
# line proves it, and that every module of the service (and of the users image's CLI) imports in the
# runtime venv.
RUN PYTHON=/opt/tools/bin/python protos/compile.sh --pyi_out=. \
    && pip wheel --quiet --no-deps --no-build-isolation --wheel-dir /tmp/wheels \
        ./protos ./libs/plumbing "./services/$SERVICE" $([ "$SERVICE" = users ] && echo ./clients/cli) \
    && uv pip install --config-file /etc/uv/pip.toml --quiet --python /opt/venv/bin/python --no-deps /tmp/wheels/*.whl \
    && cd / && /opt/venv/bin/python -c "import importlib, importlib.resources as r, pkgutil, sys; \
        from users.v1 import users_pb2_grpc; assert r.files('users.v1').joinpath('users.binpb').is_file(); \
        packages = [importlib.import_module(name) for name in sys.argv[1:]]; \
        modules = [m.name for p in packages for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.')]; \
        [importlib.import_module(name) for name in modules if not name.endswith('.__main__')]" \
        $(ls "/src/services/$SERVICE/src") $([ "$SERVICE" = users ] && echo userstack_cli)

# What both runtime images have: the app user (no login, no home). The service stages add their
# settings first and the venv last: the only step that depends on SERVICE comes last, so a source
# edit re-runs one COPY, and the users stage, which the classic builder (no BuildKit here) builds on
# the way to the webapp stage, costs a webapp build that one COPY (BuildKit skips the stage).
# No compilers, no grpcio-tools, no sources: only /opt/venv comes over from the builder.
FROM ${BASE_IMAGE} AS runtime
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

FROM runtime AS users
# The app user owns only /data (the database volume: a fresh named volume takes this ownership).
RUN mkdir /data && chown 10001:10001 /data
ENV USERS_LISTEN_ADDRESS=[::]:50051 USERS_DATABASE_URL=sqlite:////data/users.db
USER 10001:10001
WORKDIR /data
EXPOSE 50051
# The service's own gRPC health probe, for the API service (NOT_SERVING while the store cannot serve).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["users-healthcheck", "--service", "users.v1.UserService", "--timeout", "3"]
CMD ["python", "-m", "users_service"]
COPY --from=builder /opt/venv /opt/venv

FROM runtime AS webapp
ENV WEBAPP_HOST=0.0.0.0 WEBAPP_PORT=8000 WEBAPP_USERS_TARGET=users:50051
USER 10001:10001
WORKDIR /
EXPOSE 8000
# Liveness over HTTP with the stdlib (slim images have no curl); urlopen raises on any non-2xx.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('WEBAPP_PORT', '8000')}/healthz\", timeout=3)"]
CMD ["python", "-m", "webapp"]
COPY --from=builder /opt/venv /opt/venv

# Without --target: the stage SERVICE names (the classic builder then also builds the other one).
FROM ${SERVICE}
