"""Each command against a real users service, in both output formats, with its exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable

from userstack_cli.errors import ExitCode

from .conftest import Cli, UsersService

Names = Callable[[str], str]


def test_create_prints_the_user_as_json_and_as_a_table(run: Cli, uname: Names) -> None:
    name = uname("ada")
    user = run.json("create", name, "--email", "ada@example.com", "--display-name", "Ada L")
    assert user["username"] == name
    assert isinstance(user["id"], int)
    assert user["email"] == "ada@example.com"
    assert user["display_name"] == "Ada L"

    table = run("-o", "table", "create", uname("bob"), "--email", "bob@example.com")
    assert table.exit_code == 0, table.output
    header, row = table.stdout.splitlines()
    assert header.split() == ["ID", "USERNAME", "EMAIL", "DISPLAY", "NAME", "CREATED"]
    assert "bob@example.com" in row


def test_get_by_id_and_by_username(run: Cli, uname: Names) -> None:
    created = run.json("create", uname("get"))
    assert run.json("get", str(created["id"])) == created
    assert run.json("get", created["username"]) == created
    table = run("-o", "table", "get", created["username"])
    assert table.exit_code == 0
    assert created["username"] in table.stdout.splitlines()[1]


def test_list_follows_every_page_with_the_prefix_in_any_case(run: Cli, uname: Names) -> None:
    prefix = uname("pg")
    names = [run.json("create", f"{prefix}-{i}")["username"] for i in range(5)]
    listed = run.json("list", "--prefix", prefix.upper(), "--page-size", "2")
    assert [u["username"] for u in listed] == names
    assert [u["username"] for u in run.json("list", "--prefix", prefix, "--limit", "3")] == names[
        :3
    ]
    table = run("-o", "table", "list", "--prefix", prefix, "--page-size", "2")
    assert table.exit_code == 0
    assert [line.split()[1] for line in table.stdout.splitlines()[1:]] == names
    empty = run("-o", "table", "list", "--prefix", uname("none"))
    assert empty.stdout.strip() == "no users"
    assert run.json("list", "--prefix", uname("none")) == []


def test_update_changes_only_the_fields_given(run: Cli, uname: Names) -> None:
    created = run.json("create", uname("upd"), "--email", "old@example.com")
    updated = run.json("update", created["username"], "--display-name", "New Name")
    assert updated["display_name"] == "New Name"
    assert updated["email"] == "old@example.com"
    cleared = run("-o", "table", "update", str(created["id"]), "--email", "")
    assert cleared.exit_code == 0
    assert "old@example.com" not in cleared.stdout
    nothing = run("update", str(created["id"]))
    assert nothing.exit_code == ExitCode.INVALID
    assert "nothing to change" in nothing.stderr


def test_delete_then_get_is_not_found(run: Cli, uname: Names) -> None:
    created = run.json("create", uname("del"))
    assert run.json("delete", created["username"]) == {"deleted": created["id"]}
    gone = run("get", str(created["id"]))
    assert gone.exit_code == ExitCode.NOT_FOUND
    assert f"NOT_FOUND: user {created['id']} not found" in gone.stderr
    other = run.json("create", uname("del"))
    table = run("-o", "table", "delete", str(other["id"]))
    assert table.exit_code == 0
    assert f"deleted:  {other['id']}" in table.stdout


def test_exit_codes_tell_invalid_input_from_a_conflict(run: Cli, uname: Names) -> None:
    invalid = run("create", "X")
    assert invalid.exit_code == ExitCode.INVALID
    assert "INVALID_ARGUMENT" in invalid.stderr
    assert invalid.stdout == ""
    name = uname("dup")
    run.json("create", name)
    taken = run("create", name)
    assert taken.exit_code == ExitCode.CONFLICT
    assert "ALREADY_EXISTS" in taken.stderr
    stale = run("delete", name, "--etag", "not-the-etag")
    assert stale.exit_code == ExitCode.CONFLICT
    assert "FAILED_PRECONDITION" in stale.stderr
    usage = run("get")
    assert usage.exit_code == ExitCode.INVALID


def test_health_in_both_formats(run: Cli) -> None:
    assert run.json("health")["status"] == "SERVING"
    table = run("-o", "table", "health", "--service", "")
    assert table.exit_code == 0
    assert "status:   SERVING" in table.stdout
    unknown = run("health", "--service", "no.such.Service")
    assert unknown.exit_code == ExitCode.NOT_FOUND


def test_call_builds_requests_from_reflection(run: Cli, uname: Names) -> None:
    """Methods the CLI has no command for, built from the server's reflection alone."""
    first, second = run.json("create", uname("c")), run.json("create", uname("c"))
    batch = run.json(
        "call",
        "users.v1.UserService/BatchGetUsers",
        json.dumps({"ids": [second["id"], 999999, first["id"]]}),
    )
    assert [u["username"] for u in batch["users"]] == [second["username"], first["username"]]
    # A bidirectional stream: NDJSON in, NDJSON out.
    lookups = f'{{"username": "{first["username"]}"}}\n{{"id": 999999}}\n'
    answers = run("-o", "json", "call", "users.v1.UserService.LookupUsers", "-", input=lookups)
    assert answers.exit_code == 0, answers.output
    lines = [json.loads(line) for line in answers.stdout.splitlines()]
    assert lines[0]["user"]["username"] == first["username"]
    assert lines[1]["error"]["code"] == 5
    # A service the CLI knows nothing of: the reflection service itself.
    listed = run(
        "call",
        "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        '[{"list_services": ""}]',
    )
    assert listed.exit_code == 0, listed.output
    services = json.loads(listed.stdout)["list_services_response"]["service"]
    assert {"name": "users.v1.UserService"} in services


def test_call_names_what_is_wrong(run: Cli) -> None:
    no_service = run("call", "nope.v1.Nothing/Get", "{}")
    assert no_service.exit_code == ExitCode.NOT_FOUND
    assert "users.v1.UserService" in no_service.stderr  # the services it does have
    no_method = run("call", "users.v1.UserService/Nope", "{}")
    assert no_method.exit_code == ExitCode.NOT_FOUND
    assert "GetUser" in no_method.stderr
    bad_json = run("call", "users.v1.UserService/GetUser", "{not json")
    assert bad_json.exit_code == ExitCode.INVALID
    wrong_field = run("call", "users.v1.UserService/GetUser", '{"nick": "x"}')
    assert wrong_field.exit_code == ExitCode.INVALID
    assert "users.v1.GetUserRequest" in wrong_field.stderr
    missing = run("call", "users.v1.UserService/GetUser", '{"id": 987654}')
    assert missing.exit_code == ExitCode.NOT_FOUND


def test_the_servers_log_line_names_the_cli_as_peer_and_user_agent(
    run: Cli, users: UsersService, uname: Names
) -> None:
    name = uname("logged")
    run.json("create", name)
    line = users.process.wait_for_match(
        r'"message": "rpc /users.v1.UserService/CreateUser OK".*"user_agent": "userstack-cli/'
    )
    assert '"peer": "ipv4:127.0.0.1:' in line
