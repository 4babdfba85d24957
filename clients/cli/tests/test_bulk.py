"""import, export and watch against a real users service."""

from __future__ import annotations

import json
import selectors
import signal
import time
from collections.abc import Callable
from pathlib import Path

from userstack_cli.errors import ExitCode

from .conftest import ADMIN, ROOT, Cli, UsersService, userstack

Names = Callable[[str], str]


def test_import_reports_each_bad_row_and_creates_the_good_ones(
    run: Cli, uname: Names, tmp_path: Path
) -> None:
    good, other, existing = uname("imp"), uname("imp"), run.json("create", uname("imp"))
    rows = [
        {"username": good, "email": "good@example.com", "display_name": "Good"},
        "this line is not JSON",
        {"username": "X"},  # line 3: refused by the server
        "",
        {"username": other},
        {"username": existing["username"]},
        [1, 2],  # line 7: not an object
        {"username": uname("imp"), "email": "not-an-email"},  # line 8: refused by the server
    ]
    file = tmp_path / "users.ndjson"
    file.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")

    result = run("-o", "json", "import", str(file))
    assert result.exit_code == ExitCode.INVALID, result.output
    report = json.loads(result.stdout)
    assert (report["created"], report["existing"], report["rejected"]) == (2, 1, 4)
    assert [(r["line"], r["field"]) for r in report["rejections"]] == [
        (2, ""),
        (3, "username"),
        (7, ""),
        (8, "email"),
    ]
    assert report["rejections"][1]["username"] == "X"
    assert run.json("get", good)["display_name"] == "Good"
    assert run.json("get", other)["username"] == other

    table = run("-o", "table", "import", str(file))
    assert table.exit_code == ExitCode.INVALID
    lines = table.stdout.splitlines()
    assert lines[0] == "created 0, already existing 3, rejected 4"
    assert lines[1].split() == ["LINE", "USERNAME", "FIELD", "REASON"]
    assert lines[3].split()[:3] == ["3", "X", "username"]


def test_import_reads_csv_with_a_header(run: Cli, uname: Names, tmp_path: Path) -> None:
    first, second = uname("csv"), uname("csv")
    file = tmp_path / "users.csv"
    file.write_text(
        f'username,email,display_name\n{first},{first}@example.com,"Doe, Jane"\n{second},,\n'
    )
    report = run.json("import", str(file), "--progress")
    assert (report["created"], report["rejected"]) == (2, 0)
    assert run.json("get", first)["display_name"] == "Doe, Jane"
    headless = tmp_path / "headless.csv"
    headless.write_text(f"{first},x@example.com\n")
    refused = run("-o", "json", "import", str(headless))
    assert refused.exit_code == ExitCode.INVALID
    assert "header" in json.loads(refused.stdout)["rejections"][0]["reason"]


def test_export_then_import_elsewhere_gives_the_same_users(
    run: Cli, spawn_users: Callable[..., UsersService], uname: Names, tmp_path: Path
) -> None:
    for i in range(3):
        run.json("create", uname(f"rt{i}"), "--email", f"rt{i}@example.com", "--display-name", "Ré")
    exported = tmp_path / "export.ndjson"
    result = run("export", str(exported))
    assert result.exit_code == 0, result.output
    assert "exported" in result.stderr

    elsewhere = Cli(spawn_users().address, {**run.env, "USERSTACK_TOKEN": None}).signed_in()
    report = elsewhere.json("import", str(exported))
    assert report["rejected"] == 0
    again = elsewhere("export")
    assert again.exit_code == 0

    def fields(ndjson: str) -> list[tuple[str, str, str]]:
        users = [json.loads(line) for line in ndjson.splitlines()]
        return [(u["username"], u["email"], u["display_name"]) for u in users]

    assert fields(again.stdout) == fields(exported.read_text())
    assert len(fields(again.stdout)) >= 3


def test_export_of_a_prefix_writes_those_users_lines_in_id_order(run: Cli, uname: Names) -> None:
    prefix = uname("pre")
    made = [run.json("create", f"{prefix}{i}", "--email", f"p{i}@example.com") for i in range(3)]
    result = run("export", "--prefix", prefix.upper())
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [user["id"] for user in made]
    everyone = run("export").stdout.splitlines()
    assert lines == [line for line in everyone if json.loads(line)["id"] in {u["id"] for u in made}]
    refused = run("export", "--prefix", "not a prefix")
    assert refused.exit_code == ExitCode.INVALID, refused.output


def test_watch_prints_a_create_and_ends_cleanly_on_ctrl_c(
    users: UsersService, run: Cli, uname: Names, tmp_path: Path
) -> None:
    env = {k: v for k, v in run.env.items() if v is not None}
    with userstack("--target", users.address, "-o", "json", "watch", env=env) as watch:
        try:
            assert _read_line(watch.stderr, 20).startswith(f"watching {users.address}")
            name = uname("seen")
            run.json("create", name)
            event = json.loads(_read_line(watch.stdout, 10))
            assert event["type"] == "USER_EVENT_TYPE_CREATED"
            assert event["user"]["username"] == name
            watch.send_signal(signal.SIGINT)
            assert watch.wait(10) == 0
            assert watch.stderr is not None
            assert "Traceback" not in watch.stderr.read()
        finally:
            watch.kill()


def test_watch_for_a_while_ends_by_itself(run: Cli) -> None:
    result = run("-o", "table", "watch", "--for", "0.5")
    assert result.exit_code == 0, result.output


def _read_line(stream: object, within: float) -> str:
    """The next line of a child's pipe, within `within` seconds (AssertionError otherwise)."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)  # type: ignore[arg-type]
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if selector.select(deadline - time.monotonic()):
                return str(stream.readline())  # type: ignore[attr-defined]
    raise AssertionError(f"no line within {within} s")


def test_make_seed_imports_the_bundled_users_once(
    spawn_users: Callable[..., UsersService], isolated_env: dict[str, str | None]
) -> None:
    recipe = (ROOT / "Makefile").read_text().split("\nseed:", 1)[1].split("\n\n", 1)[0]
    assert "userstack import clients/cli/seed/users.ndjson" in recipe
    cli = Cli(spawn_users().address, isolated_env).signed_in()
    seed = str(ROOT / "clients" / "cli" / "seed" / "users.ndjson")
    first = cli.json("import", seed)
    assert (first["created"], first["rejected"]) == (120, 0)
    again = cli.json("import", seed)
    assert (again["created"], again["existing"]) == (0, 120)
    names = [u["display_name"] for u in cli.json("list") if u["username"] != ADMIN[0]]
    assert len(names) == 120
    assert any(not name.isascii() for name in names)  # names from many languages
