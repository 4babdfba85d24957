"""Every server a bench run can start, defined once: how to run it, where, and what it needs.

A definition names the features a server runs with (TLS, tokens, metrics, tracing), so that a
row compares two definitions that differ by one feature, or by the production set of them
(`users-prod`, `webapp-prod`: what compose.yaml runs, tracing on at a realistic sampler).
Environment values may name ports: `{port}` is the server's own, `{port:NAME}` another's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PEERS = "scripts.bench.peers."
Caller = Literal["member", "admin"]


@dataclass(frozen=True)
class Spec:
    """One server: `python args...` with `env`, on the server core (or beside the load)."""

    args: tuple[str, ...]
    env: dict[str, str]
    needs: tuple[str, ...] = ()  # started (and ready) before this one
    beside_load: bool = False  # the HTTP frontends' backends run on the load core
    caller: Caller | None = None  # the token every call to it carries (none: no token)
    client_cert: bool = False  # its clients present the bench's client certificate (mTLS)


def database_env(path: Path) -> dict[str, str]:
    """How the users service is told where its SQLite file is."""
    return {"USERS_DATABASE_URL": f"sqlite:///{path}"}


@dataclass(frozen=True)
class Files:
    """What the definitions point at: the run's directory, its TLS files and token issuer."""

    workdir: Path
    issuer_env: dict[str, str]  # testkit.tokens.TestIssuer.server_env()
    stream_users: int

    @property
    def tls(self) -> Path:
        return self.workdir / "tls"


# Tracing as production runs it: on (spans to a collector, here the sink on the load core), a
# new trace sampled 1 time in 100, a call from a traced caller as its caller decided. Sampling
# nothing (always_off, the "-unsampled" rows) would make tracing pointless in production; the
# SDK's default (parentbased_always_on, the "-sampled" rows) exports every call.
PROD_SAMPLER = {
    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    "OTEL_TRACES_SAMPLER_ARG": "0.01",
}
OTLP = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:{port:otlp-sink}"}
# Metrics served, tracing on with nothing sampled, every call sampled and exported.
OBSERVED = {
    "metrics": {"METRICS_LISTEN_ADDRESS": "127.0.0.1:0"},
    "unsampled": {**OTLP, "OTEL_TRACES_SAMPLER": "always_off"},
    "sampled": {**OTLP, "OTEL_TRACES_SAMPLER": "always_on"},
}


# The users service each webapp reads from (its CPU counts in the webapp's rows).
BACKENDS = {
    "webapp": "users-backend",
    "webapp-control": "users-backend",
    **{f"webapp-{variant}": "users-backend" for variant in OBSERVED},
    "webapp-mtls": "users-backend-mtls",
    "webapp-auth": "users-backend-auth",
    "webapp-prod": "users-prod-backend",
}


def _prefixed(service: str, env: dict[str, str]) -> dict[str, str]:
    prefix = "USERS_" if service == "users" else "WEBAPP_"
    return {(prefix + k if k.startswith("METRICS") else k): v for k, v in env.items()}


def _users_env(files: Files, database: str = "users.db") -> dict[str, str]:
    return {
        **database_env(files.workdir / database),
        "USERS_LISTEN_ADDRESS": "127.0.0.1:{port}",
        "USERS_GRACE_PERIOD_SECONDS": "2",
        # The plain rows measure the service as it was before access control (loopback only;
        # the peers and HTTP frontends carry no token): "users-auth" checks one on every call.
        "USERS_AUTH_ENFORCED": "false",
        # The bench measures capacity from one address: the per-caller rates are off.
        "USERS_WRITES_PER_SECOND": "0",
        "USERS_IMPORTS_PER_MINUTE": "0",
    }


def _tls_env(files: Files, client_auth: bool) -> dict[str, str]:
    env = {
        "USERS_TLS_CERT_FILE": str(files.tls / "users.pem"),
        "USERS_TLS_KEY_FILE": str(files.tls / "users.key"),
        "USERS_TLS_CA_FILE": str(files.tls / "ca.pem"),
    }
    return {**env, "USERS_TLS_CLIENT_AUTH": "require"} if client_auth else env


def _auth_env(files: Files) -> dict[str, str]:
    return {**files.issuer_env, "USERS_AUTH_ENFORCED": "true"}


def _prod_users_env(files: Files, database: str = "users.db") -> dict[str, str]:
    """compose.yaml's users service: mTLS required, tokens checked, metrics served, traced."""
    return {
        **_users_env(files, database),
        **_tls_env(files, client_auth=True),
        **_auth_env(files),
        "USERS_METRICS_LISTEN_ADDRESS": "127.0.0.1:0",
        **OTLP,
        **PROD_SAMPLER,
    }


def _webapp_env(name: str) -> dict[str, str]:
    return {
        "WEBAPP_USERS_TARGET": f"127.0.0.1:{{port:{BACKENDS[name]}}}",
        "WEBAPP_PORT": "{port}",
        "WEBAPP_SECRET_KEY": secrets.token_urlsafe(32),
        "WEBAPP_WRITES_PER_SECOND": "0",
    }


def _webapp_mtls_env(files: Files) -> dict[str, str]:
    return {
        "WEBAPP_USERS_TLS_CA_FILE": str(files.tls / "ca.pem"),
        "WEBAPP_USERS_TLS_CERT_FILE": str(files.tls / "client.pem"),
        "WEBAPP_USERS_TLS_KEY_FILE": str(files.tls / "client.key"),
    }


def _users(
    env: dict[str, str],
    *,
    needs: tuple[str, ...] = (),
    beside_load: bool = False,
    caller: Caller | None = None,
    client_cert: bool = False,
) -> Spec:
    return Spec(("-m", "users_service"), env, needs, beside_load, caller, client_cert)


def _webapp(
    name: str, env: dict[str, str], *, needs: tuple[str, ...] = (), caller: Caller | None = None
) -> Spec:
    return Spec(("-m", "webapp"), env, (BACKENDS[name], *needs), caller=caller)


def users_servers(files: Files) -> dict[str, Spec]:
    """The users service: plain (seeded), and one feature at a time on the same database."""
    plain = _users_env(files)
    seeded = ("users",)  # every other server on users.db opens it once seeded
    tls = {**plain, **_tls_env(files, client_auth=False)}
    return {
        "users": _users(plain),
        # Creates go to their own database, so that every GetUsers streams the same users.
        "users-writes": _users(_users_env(files, "writes.db")),
        "users-auth": _users({**plain, **_auth_env(files)}, needs=seeded, caller="member"),
        "users-tls": _users(tls, needs=seeded, client_cert=True),
        "users-mtls": _users(
            {**tls, "USERS_TLS_CLIENT_AUTH": "require"}, needs=seeded, client_cert=True
        ),
        # The HTTP frontends' backend: a second process on the same file, off the server core.
        "users-backend": _users(plain, needs=seeded, beside_load=True),
        # Backends with one feature each, for the webapp's rows of that feature.
        "users-backend-mtls": _users(
            {**tls, "USERS_TLS_CLIENT_AUTH": "require"}, needs=seeded, beside_load=True
        ),
        "users-backend-auth": _users({**plain, **_auth_env(files)}, needs=seeded, beside_load=True),
        **{
            f"users-{variant}": _users(
                {**plain, **_prefixed("users", extra)}, needs=(*seeded, "otlp-sink")
            )
            for variant, extra in OBSERVED.items()
        },
    }


def webapp_servers(files: Files) -> dict[str, Spec]:
    """The webapp: plain, one feature at a time, each on the backend that feature needs."""
    out = {
        "webapp": _webapp("webapp", _webapp_env("webapp")),
        # The default webapp again, a process of its own: its row against the default's is the
        # spread of the comparison itself (order, start, the batches' sizes), feature-free.
        "webapp-control": _webapp("webapp-control", _webapp_env("webapp-control")),
        "webapp-mtls": _webapp(
            "webapp-mtls", {**_webapp_env("webapp-mtls"), **_webapp_mtls_env(files)}
        ),
        # The caller's token, passed on to a backend that checks it.
        "webapp-auth": _webapp("webapp-auth", _webapp_env("webapp-auth"), caller="member"),
    }
    for variant, extra in OBSERVED.items():
        name = f"webapp-{variant}"
        env = {**_webapp_env(name), **_prefixed("webapp", extra)}
        out[name] = _webapp(name, env, needs=("otlp-sink",))
    return out


def prod_servers(files: Files) -> dict[str, Spec]:
    """The production configuration (compose.yaml): mTLS between every gRPC hop, a token on
    every call, metrics served, tracing on at PROD_SAMPLER. The webapp serves plain HTTP, as
    in compose.yaml (and behind the Kubernetes Ingress, which terminates TLS)."""
    webapp = {
        **_webapp_env("webapp-prod"),
        **_webapp_mtls_env(files),
        "WEBAPP_METRICS_LISTEN_ADDRESS": "127.0.0.1:0",
        **OTLP,
        **PROD_SAMPLER,
    }
    traced = ("users", "otlp-sink")
    return {
        "users-prod": _users(
            _prod_users_env(files), needs=traced, caller="member", client_cert=True
        ),
        # CreateUser in production: an admin's token; its own database, like users-writes.
        "users-prod-writes": _users(
            _prod_users_env(files, "prod-writes.db"),
            needs=("otlp-sink",),
            caller="admin",
            client_cert=True,
        ),
        "users-prod-backend": _users(_prod_users_env(files), needs=traced, beside_load=True),
        "webapp-prod": _webapp("webapp-prod", webapp, needs=("otlp-sink",), caller="member"),
    }


def peer_servers(files: Files) -> dict[str, Spec]:
    """The servers we are measured against, and the trace sink (off the server core)."""
    peer = ("--port={port}", f"--stream-users={files.stream_users}")
    backend = "--users-target=127.0.0.1:{port:users-backend}"
    out = {
        "otlp-sink": Spec(("-m", PEERS + "otlp_sink", "--port={port}"), {}, beside_load=True),
    }
    for name, module, extra in (
        ("aio", "aio_echo", ()),
        ("aio-uvloop", "aio_echo", ("--uvloop",)),
        # The echo on the users service's runtime: uvloop, its grpc core settings, SCHED_BATCH.
        ("aio-tuned", "tuned_echo", ("--uvloop",)),
        ("sync-tutorial", "sync_tutorial", ()),
        ("grpclib", "grpclib_echo", ()),
        ("fastapi-bare", "fastapi_echo", ()),
        ("fastapi-grpc", "fastapi_echo", (backend,)),
        ("flask-tutorial", "flask_tutorial", (backend,)),
    ):
        needs = ("users-backend",) if extra == (backend,) else ()
        out[name] = Spec(("-m", PEERS + module, *peer, *extra), {}, needs=needs)
    return out


def definitions(files: Files) -> dict[str, Spec]:
    """Every server a run may start, by name."""
    return {
        **users_servers(files),
        **webapp_servers(files),
        **prod_servers(files),
        **peer_servers(files),
    }
