"""What a bench run measures: the rows (a server under a load) and the ratios between them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import grpc
from google.protobuf.message import Message
from users.v1 import users_pb2, users_pb2_grpc

from scripts.bench import grpc_load, h2load, wrk
from scripts.bench.peers.canned import canned_user
from scripts.bench.results import Load
from scripts.bench.servers import BACKENDS
from scripts.bench.stack import Stack

GRPC_PEERS = ("aio", "aio-uvloop", "aio-tuned", "sync-tutorial", "grpclib")
READ_ID = 4242  # a seeded user the size of the canned one
# The users service over TLS and over mTLS (servers.py), against "users" in plaintext.
TLS_SERVERS = ("users-tls", "users-mtls")
# The bar for the production configuration against the plaintext default.
PROD_BAR = 0.8
# The default webapp again (servers.py): what a variant's ratio would be were it no variant.
CONTROL = "webapp-control"


@dataclass(frozen=True)
class Settings:
    """How long and how hard: `make bench` and `make bench-quick` differ only here."""

    seconds: float
    repetitions: int
    concurrencies: tuple[int, ...]
    stream_users: int
    stream_seconds: float = 120.0


@dataclass(frozen=True)
class Row:
    """One measurement: `load` drives `server`; CPU counts `cpu_of` (server and backends)."""

    name: str
    server: str
    unit: str
    load: Callable[[Stack], Load]
    cpu_of: tuple[str, ...]
    prepare: Callable[[Stack], object] | None = None  # run before the measurement starts


@dataclass(frozen=True)
class Ratio:
    """Row `over` / row `under` (median of per-repetition ratios), and the bar to clear."""

    over: str
    under: str
    target: float | None = None


def _h2load(
    method: str, request: Message, server: str, concurrency: int, settings: Settings
) -> Callable[[Stack], Load]:
    def load(stack: Stack) -> Load:
        url = f"http://127.0.0.1:{stack[server].port}/users.v1.UserService/{method}"
        size = reply_size(stack, server, method, request)
        token = stack.token(server)
        headers = [f"authorization: Bearer {token}"] if token else []
        return h2load.unary(
            url, request, reply_size=size, concurrency=concurrency, seconds=settings.seconds,
            cores=stack.cores.load, workdir=stack.workdir, headers=headers,
        )  # fmt: skip

    return load


def _grpc(mode: str, server: str, concurrency: int, settings: Settings) -> Callable[[Stack], Load]:
    streaming = mode in ("stream", "export")
    processes = 1 if streaming or mode == "lookup" else 2

    def load(stack: Stack) -> Load:
        tls_dir = stack.tls_dir_for(server)
        return grpc_load.run(
            mode, stack[server].port, processes=processes, concurrency=concurrency,
            seconds=settings.stream_seconds if streaming else settings.seconds,
            cores=stack.cores.load, user_id=READ_ID, users=settings.stream_users,
            tls_dir=None if tls_dir is None else str(tls_dir), token=stack.token(server),
        )  # fmt: skip

    return load


# A full stream of every user, as a client asks for it: GetUsers (a user a message) and
# ExportUsers (the default batch size), counted in users.
STREAMS: dict[str, Message] = {
    "GetUsers": users_pb2.GetUsersRequest(),
    "ExportUsers": users_pb2.ExportUsersRequest(),
}


def _h2load_stream(method: str, server: str, settings: Settings) -> Callable[[Stack], Load]:
    def load(stack: Stack) -> Load:
        url = f"http://127.0.0.1:{stack[server].port}/users.v1.UserService/{method}"
        return h2load.stream(
            url, STREAMS[method], messages=settings.stream_users,
            total_bytes=stream_bytes(stack, server, method), seconds=settings.stream_seconds,
            cores=stack.cores.load, workdir=stack.workdir,
        )  # fmt: skip

    return load


def _wrk(server: str, concurrency: int, settings: Settings) -> Callable[[Stack], Load]:
    def load(stack: Stack) -> Load:
        prefix = f"http://127.0.0.1:{stack[server].port}/api/v1/users/"
        return wrk.get_users(
            prefix, settings.stream_users, concurrency, settings.seconds, stack.cores.load,
            token=stack.token(server),
        )  # fmt: skip

    return load


def rows(settings: Settings) -> list[Row]:
    """Every row of the run, in the order each repetition measures them."""
    get = users_pb2.GetUserRequest(id=READ_ID)
    page = users_pb2.ListUsersRequest(page_size=50)
    out: list[Row] = []
    for c in settings.concurrencies:
        for server in (*GRPC_PEERS, "users"):
            out.append(Row(f"GetUser c{c} {server}", server, "calls/s",
                           _h2load("GetUser", get, server, c, settings), (server,)))  # fmt: skip
        with_token = _h2load("GetUser", get, "users-auth", c, settings)
        out.append(Row(f"GetUser c{c} users, member token", "users-auth", "calls/s",
                       with_token, ("users-auth",)))  # fmt: skip
    c = max(settings.concurrencies)
    out += [
        Row(f"ListUsers(50) c{c} users", "users", "pages/s",
            _h2load("ListUsers", page, "users", c, settings), ("users",)),
        Row(f"GetUser c{c} users (aio client)", "users", "calls/s",
            _grpc("get", "users", c, settings), ("users",)),
        Row(f"CreateUser c{c} users (aio client)", "users-writes", "calls/s",
            _grpc("create", "users-writes", c, settings), ("users-writes",)),
        Row("LookupUsers pipelined users", "users", "lookups/s",
            _grpc("lookup", "users", 4, settings), ("users",)),
    ]  # fmt: skip
    for server in (*GRPC_PEERS, "users"):
        out.append(Row(f"GetUsers stream {server}", server, "msgs/s",
                       _h2load_stream("GetUsers", server, settings), (server,),
                       prepare=partial(stream_bytes, server=server)))  # fmt: skip
    out.append(Row("GetUsers stream users (aio client)", "users", "msgs/s",
                   _grpc("stream", "users", 1, settings), ("users",)))  # fmt: skip
    out += [
        Row("ExportUsers stream users", "users", "users/s",
            _h2load_stream("ExportUsers", "users", settings), ("users",),
            prepare=partial(stream_bytes, server="users", method="ExportUsers")),
        Row("ExportUsers stream users (aio client)", "users", "users/s",
            _grpc("export", "users", 1, settings), ("users",)),
    ]  # fmt: skip
    out += _transport_rows(settings)
    out += _observed_rows(settings)
    out += _prod_rows(settings)
    for c in settings.concurrencies:
        for server, cpu_of in (
            ("fastapi-bare", ("fastapi-bare",)),
            ("fastapi-grpc", ("fastapi-grpc", "users-backend")),
            ("webapp", ("webapp", "users-backend")),
            ("flask-tutorial", ("flask-tutorial", "users-backend")),
        ):
            out.append(Row(f"HTTP GET user c{c} {server}", server, "requests/s",
                           _wrk(server, c, settings), cpu_of))  # fmt: skip
    low = min(settings.concurrencies)
    out.append(Row(f"HTTP GET user c{low} {CONTROL}", CONTROL, "requests/s",
                   _wrk(CONTROL, low, settings), (CONTROL, BACKENDS[CONTROL])))  # fmt: skip
    return out


def _transport_rows(settings: Settings) -> list[Row]:
    """GetUser c32/c128 and the GetUsers stream, plaintext vs TLS vs mTLS (the aio client:
    h2load cannot present a client certificate)."""
    out: list[Row] = []
    for server in ("users", *TLS_SERVERS):
        for c in settings.concurrencies:
            if server == "users" and c == max(settings.concurrencies):
                continue  # rows() has it already
            out.append(Row(f"GetUser c{c} {server} (aio client)", server, "calls/s",
                           _grpc("get", server, c, settings), (server,)))  # fmt: skip
        if server != "users":  # the plaintext stream row exists already
            out.append(Row(f"GetUsers stream {server} (aio client)", server, "msgs/s",
                           _grpc("stream", server, 1, settings), (server,)))  # fmt: skip
    return out


# Metrics served, tracing on with nothing sampled, every call sampled and exported (stack.py).
OBSERVED = ("metrics", "unsampled", "sampled")


def _observed_rows(settings: Settings) -> list[Row]:
    """GetUser (h2load) and the webapp's read (wrk) at the lowest concurrency, per variant."""
    c = min(settings.concurrencies)
    get = users_pb2.GetUserRequest(id=READ_ID)
    out: list[Row] = []
    for variant in OBSERVED:
        users, webapp = f"users-{variant}", f"webapp-{variant}"
        out += [
            Row(f"GetUser c{c} {users}", users, "calls/s",
                _h2load("GetUser", get, users, c, settings), (users,)),
            Row(f"HTTP GET user c{c} {webapp}", webapp, "requests/s",
                _wrk(webapp, c, settings), (webapp, "users-backend")),
        ]  # fmt: skip
    return out


def _observed_ratios(settings: Settings) -> list[Ratio]:
    """Each variant against the same service as it runs by default (no metrics, no tracing);
    the issue's bar, 0.95, for metrics and for unsampled tracing."""
    c = min(settings.concurrencies)
    out: list[Ratio] = []
    for variant in OBSERVED:
        target = None if variant == "sampled" else 0.95
        out += [
            Ratio(f"GetUser c{c} users-{variant}", f"GetUser c{c} users", target),
            Ratio(f"HTTP GET user c{c} webapp-{variant}", f"HTTP GET user c{c} webapp", target),
        ]
    return out


def _transport_ratios(settings: Settings) -> list[Ratio]:
    out: list[Ratio] = []
    for server in TLS_SERVERS:
        for c in settings.concurrencies:
            out.append(Ratio(f"GetUser c{c} {server} (aio client)",
                             f"GetUser c{c} users (aio client)", 0.8))  # fmt: skip
        out.append(Ratio(f"GetUsers stream {server} (aio client)",
                         "GetUsers stream users (aio client)"))  # fmt: skip
    return out


def ratios(settings: Settings) -> list[Ratio]:
    """The comparisons the run reports, with the issue's bars where it sets one."""
    c = max(settings.concurrencies)
    out: list[Ratio] = []
    for k in settings.concurrencies:
        out += [
            Ratio(f"GetUser c{k} users", f"GetUser c{k} aio", 0.85),
            # Issue 20: the service's own work at most a tenth of a call on its own runtime.
            Ratio(f"GetUser c{k} users", f"GetUser c{k} aio-tuned", 0.9),
            Ratio(f"GetUser c{k} users", f"GetUser c{k} sync-tutorial", 1.0),
            Ratio(f"GetUser c{k} users", f"GetUser c{k} grpclib", 1.0),
            Ratio(f"GetUser c{k} aio-uvloop", f"GetUser c{k} aio"),
            Ratio(f"GetUser c{k} aio-tuned", f"GetUser c{k} aio"),
            # Issue 15: a token checked on every call costs at most a tenth.
            Ratio(f"GetUser c{k} users, member token", f"GetUser c{k} users", 0.9),
        ]
    out += [
        # Issue 20 (0.7 before it): a durable create costs at most a tenth more than a read.
        Ratio(f"CreateUser c{c} users (aio client)", f"GetUser c{c} users (aio client)", 0.9),
        Ratio(f"ListUsers(50) c{c} users", f"GetUser c{c} users"),
        Ratio("GetUsers stream users", "GetUsers stream aio", 0.8),
        Ratio("GetUsers stream users", "GetUsers stream aio-tuned"),
        Ratio("GetUsers stream users", "GetUsers stream grpclib"),
        Ratio("GetUsers stream grpclib", "GetUsers stream aio"),
        # Issue 20: bulk reads move at least 3x grpclib's users (one a message) per second.
        Ratio("ExportUsers stream users", "GetUsers stream grpclib", 3.0),
        Ratio("ExportUsers stream users", "GetUsers stream users"),
        Ratio("GetUsers stream aio-uvloop", "GetUsers stream aio"),
        Ratio("GetUsers stream aio-tuned", "GetUsers stream aio"),
    ]
    out += _transport_ratios(settings)
    out += _observed_ratios(settings)
    out += _prod_ratios(settings)
    for k in settings.concurrencies:
        out += [
            # Issue 20 (0.5 before it).
            Ratio(f"HTTP GET user c{k} webapp", f"HTTP GET user c{k} fastapi-bare", 0.7),
            Ratio(f"HTTP GET user c{k} webapp", f"HTTP GET user c{k} fastapi-grpc"),
            Ratio(f"HTTP GET user c{k} webapp", f"HTTP GET user c{k} flask-tutorial", 2.0),
        ]
    # Last, so that it runs after every other variant of the webapp (beside_their_baselines).
    low = min(settings.concurrencies)
    out.append(Ratio(f"HTTP GET user c{low} {CONTROL}", f"HTTP GET user c{low} webapp"))
    return out


# Each feature of the production configuration alone, where no row had it yet (GetUser's are
# the h2load rows: users-auth, users-metrics, users-unsampled; users-tls and users-mtls).
STREAM_FEATURES = ("users-auth", "users-metrics", "users-unsampled")
WEBAPP_FEATURES = ("webapp-mtls", "webapp-auth")


def _prod_rows(settings: Settings) -> list[Row]:
    """The production configuration (servers.py: users-prod, webapp-prod) for GetUser,
    CreateUser, the GetUsers and ExportUsers streams and the webapp's read, with the client of
    the plaintext row it is compared with (the aio client: h2load cannot present a client
    certificate); then the features not measured alone elsewhere."""
    c, low = max(settings.concurrencies), min(settings.concurrencies)
    out = [
        Row(f"GetUser c{k} users-prod (aio client)", "users-prod", "calls/s",
            _grpc("get", "users-prod", k, settings), ("users-prod",))
        for k in settings.concurrencies
    ]  # fmt: skip
    out += [
        Row(f"CreateUser c{c} users-prod (aio client)", "users-prod-writes", "calls/s",
            _grpc("create", "users-prod-writes", c, settings), ("users-prod-writes",)),
        Row("GetUsers stream users-prod (aio client)", "users-prod", "msgs/s",
            _grpc("stream", "users-prod", 1, settings), ("users-prod",)),
        Row("ExportUsers stream users-prod (aio client)", "users-prod", "users/s",
            _grpc("export", "users-prod", 1, settings), ("users-prod",)),
    ]  # fmt: skip
    out += [
        Row(f"GetUsers stream {server} (aio client)", server, "msgs/s",
            _grpc("stream", server, 1, settings), (server,))
        for server in STREAM_FEATURES
    ]  # fmt: skip
    webapps = [(k, "webapp-prod") for k in settings.concurrencies]
    webapps += [(low, server) for server in WEBAPP_FEATURES]
    for k, server in webapps:
        out.append(Row(f"HTTP GET user c{k} {server}", server, "requests/s",
                       _wrk(server, k, settings), (server, BACKENDS[server])))  # fmt: skip
    return out


def _prod_ratios(settings: Settings) -> list[Ratio]:
    """Production against plaintext defaults (the issue's bar, 0.8); each feature alone."""
    c, low = max(settings.concurrencies), min(settings.concurrencies)
    stream = "GetUsers stream users (aio client)"
    out = [
        Ratio(f"GetUser c{k} users-prod (aio client)", f"GetUser c{k} users (aio client)",
              PROD_BAR)
        for k in settings.concurrencies
    ]  # fmt: skip
    out += [
        Ratio(f"CreateUser c{c} users-prod (aio client)", f"CreateUser c{c} users (aio client)",
              PROD_BAR),
        Ratio("GetUsers stream users-prod (aio client)", stream, PROD_BAR),
        Ratio("ExportUsers stream users-prod (aio client)", "ExportUsers stream users (aio client)",
              PROD_BAR),
    ]  # fmt: skip
    out += [
        Ratio(f"HTTP GET user c{k} webapp-prod", f"HTTP GET user c{k} webapp", PROD_BAR)
        for k in settings.concurrencies
    ]
    out += [Ratio(f"GetUsers stream {server} (aio client)", stream) for server in STREAM_FEATURES]
    out += [
        Ratio(f"HTTP GET user c{low} {server}", f"HTTP GET user c{low} webapp")
        for server in WEBAPP_FEATURES
    ]
    return out


def beside_their_baselines(rows: list[Row], ratios: list[Ratio]) -> list[Row]:
    """`rows` reordered so that each row a ratio compares with another comes right after that
    other (transitively: a variant after its default, the default after its peer): the machine
    drifts over a repetition, and a ratio should be of two rows measured moments apart."""
    names = {row.name: row for row in rows}
    after: dict[str, list[str]] = {}
    for ratio in ratios:
        if ratio.over in names and ratio.under in names:
            after.setdefault(ratio.under, []).append(ratio.over)
    placed: dict[str, Row] = {}

    def place(name: str) -> None:
        if name not in placed:
            placed[name] = names[name]
            for follower in after.get(name, []):
                place(follower)

    followers = {name for names_after in after.values() for name in names_after}
    for row in rows:
        if row.name not in followers:
            place(row.name)
    for row in rows:  # none left unless the ratios go round in a circle
        place(row.name)
    return list(placed.values())


def warm_ups(rows: list[Row]) -> list[Row]:
    """Each server's first row: run once, unmeasured, before a run of several repetitions, so
    that no process is measured cold beside one that has already served minutes of earlier
    rows (the default webapp, before its variants: docs/performance.md)."""
    first: dict[str, Row] = {}
    for row in rows:
        first.setdefault(row.server, row)
    return list(first.values())


def barred(rows: list[Row], ratios: list[Ratio]) -> list[Row]:
    """The rows (in their order) that some ratio with a target compares."""
    names = {name for r in ratios if r.target is not None for name in (r.over, r.under)}
    return [row for row in rows if row.name in names]


def stream_bytes(stack: Stack, server: str, method: str = "GetUsers") -> int:
    """The bytes of a full `method` stream (STREAMS) from `server` (read once, then kept)."""
    if server in GRPC_PEERS:  # the peers stream GetUsers' canned user
        return stack.stream_users * (canned_user().ByteSize() + 5)
    key = f"{server} {method}"
    if key not in stack.facts:
        with grpc.insecure_channel(f"127.0.0.1:{stack[server].port}") as channel:
            call = getattr(users_pb2_grpc.UserServiceStub(channel), method)
            stack.facts[key] = sum(m.ByteSize() + 5 for m in call(STREAMS[method], timeout=120))
    return stack.facts[key]


def reply_size(stack: Stack, server: str, method: str, request: Message) -> int:
    """The size of the reply `server` gives `request` (asked once: the same every time)."""
    if server in GRPC_PEERS:
        return canned_user().ByteSize()
    token = stack.token(server)
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    with grpc.insecure_channel(f"127.0.0.1:{stack[server].port}") as channel:
        call = getattr(users_pb2_grpc.UserServiceStub(channel), method)
        reply = call(request, timeout=10, metadata=metadata)
        size: int = reply.ByteSize()
        return size
