"""The stack as compose runs it: health-gated start and the containers' security posture."""

from __future__ import annotations

import json

import pytest

from tests.integration.stack import APP_UID, SERVICES, Stack, docker_time


def test_compose_ps_shows_both_services_running_and_healthy(stack: Stack) -> None:
    output = stack.compose("ps", "--format", "json").stdout
    rows = [json.loads(line) for line in output.splitlines() if line.strip()]
    health = {row["Service"]: (row["State"], row["Health"]) for row in rows}
    assert health == {service: ("running", "healthy") for service in SERVICES}


def test_webapp_started_only_after_users_was_healthy(stack: Stack) -> None:
    webapp_started = docker_time(stack.startup["webapp"]["State"]["StartedAt"])
    probes = stack.startup["users"]["State"]["Health"]["Log"]
    healthy_at = [docker_time(probe["End"]) for probe in probes if probe["ExitCode"] == 0]
    assert healthy_at, f"no passing users health probe recorded: {probes}"
    assert min(healthy_at) <= webapp_started


@pytest.mark.parametrize("service", SERVICES)
def test_processes_run_as_the_non_root_app_user(stack: Stack, service: str) -> None:
    uid = stack.exec(service, "id", "-u").stdout.strip()
    status = stack.exec(service, "cat", "/proc/1/status").stdout
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert stack.inspect(service)["Config"]["User"] == f"{APP_UID}:{APP_UID}"
    assert uid == APP_UID
    assert set(uids) == {APP_UID}


@pytest.mark.parametrize("service", SERVICES)
def test_root_filesystem_is_read_only_and_tmp_is_writable(stack: Stack, service: str) -> None:
    write_root = stack.exec(service, "touch", "/opt/venv/intruder")
    write_tmp = stack.exec(service, "touch", "/tmp/scratch")
    assert stack.inspect(service)["HostConfig"]["ReadonlyRootfs"] is True
    assert write_root.returncode != 0
    assert "Read-only file system" in write_root.stderr
    assert write_tmp.returncode == 0


@pytest.mark.parametrize("service", SERVICES)
def test_capabilities_are_dropped_and_privileges_cannot_grow(stack: Stack, service: str) -> None:
    host = stack.inspect(service)["HostConfig"]
    status = stack.exec(service, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert fields["CapEff"].strip() == "0000000000000000"
    assert fields["NoNewPrivs"].strip() == "1"


@pytest.mark.parametrize("service", SERVICES)
def test_runtime_images_carry_generated_stubs_but_no_build_tools(
    stack: Stack, service: str
) -> None:
    stubs = stack.exec(service, "python", "-c", "from users.v1 import users_pb2_grpc")
    tools = stack.exec(service, "python", "-c", "import grpc_tools")
    assert stubs.returncode == 0, stubs.stderr
    assert tools.returncode != 0
    assert "No module named 'grpc_tools'" in tools.stderr


# The service's process (`python -m MODULE`: not tini, not a health check, not this probe), and
# the policy of each of its threads.
_THREAD_POLICIES = """
import json, os, sys
policies = set()
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:  # a health check's process may come and go meanwhile
        command = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
        if command[1:3] == [b"-m", sys.argv[1].encode()]:
            policies.update(os.sched_getscheduler(int(t)) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        continue
print(json.dumps({"policies": sorted(policies), "batch": os.SCHED_BATCH}))
"""


@pytest.mark.parametrize("service", SERVICES)
def test_every_thread_of_the_service_runs_batch_scheduled(stack: Stack, service: str) -> None:
    # SCHED_BATCH needs no capability: it works under cap_drop ALL and the default seccomp.
    module = {"users": "users_service", "webapp": "webapp"}[service]
    probe = stack.exec(service, "python", "-c", _THREAD_POLICIES, module)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["policies"] == [found["batch"]], found
