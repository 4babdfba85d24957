"""scripts/certs.py: the development CA and certificates, kept while current, remade near expiry."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest
from plumbing.tls import TlsFiles, load_material
from plumbing.tokens import load_key_file
from testkit.certs import CertificateAuthority

ROOT = Path(__file__).resolve().parents[2]
RENEW_DAYS = 14  # scripts/certs.py's


def ensure(directory: Path, *args: str) -> list[str]:
    """Runs `python -m scripts.certs --dir directory ARGS`; the names it (re)made."""
    result = subprocess.run(
        [sys.executable, "-m", "scripts.certs", "--dir", str(directory), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    made = result.stdout.removeprefix("certs: ").rpartition(" in ")[0]
    return [] if made == "all current" else made.split(", ")


def test_makes_a_ca_and_certificates_that_load(tmp_path: Path) -> None:
    assert ensure(tmp_path) == ["ca", "users", "webapp", "client", "postgres", "signing-keys"]
    [signing_key] = (tmp_path / "signing-keys").glob("*.pem")
    assert load_key_file(signing_key).kid
    assert signing_key.stat().st_mode & 0o777 == 0o600
    for name in ("users", "webapp", "client"):
        files = TlsFiles(tmp_path / f"{name}.pem", tmp_path / f"{name}.key", tmp_path / "ca.pem")
        assert load_material(files).cert_chain
    summary = load_material(TlsFiles(tmp_path / "users.pem", tmp_path / "users.key")).summary
    for name in ("DNS:localhost", "DNS:users", "IP:127.0.0.1", "users-headless.userstack.svc"):
        assert name in summary
    assert (tmp_path / "client.key").stat().st_mode & 0o777 == 0o600


def test_keeps_current_files_and_remakes_one_near_expiry(tmp_path: Path) -> None:
    ensure(tmp_path)
    before = (tmp_path / "users.pem").read_bytes()
    assert ensure(tmp_path) == []
    assert (tmp_path / "users.pem").read_bytes() == before
    ca = CertificateAuthority.load(tmp_path / "ca.pem", tmp_path / "ca.key")
    soon = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=90 - RENEW_DAYS + 1)
    ca.issue("webapp", not_before=soon, days=90).write(tmp_path / "webapp")
    assert ensure(tmp_path) == ["webapp"]


def test_a_new_ca_remakes_everything_it_signs(tmp_path: Path) -> None:
    ensure(tmp_path)
    (tmp_path / "ca.key").unlink()
    assert ensure(tmp_path) == ["ca", "users", "webapp", "client", "postgres"]
    files = TlsFiles(tmp_path / "users.pem", tmp_path / "users.key", tmp_path / "ca.pem")
    assert load_material(files).root_certificates == (tmp_path / "ca.pem").read_bytes()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a key to another uid")
def test_the_postgres_key_belongs_to_the_postgres_uid_alone(tmp_path: Path) -> None:
    ensure(tmp_path, "--uid", "10001")
    key = (tmp_path / "postgres.key").stat()
    assert (key.st_uid, key.st_mode & 0o777) == (999, 0o600)  # PostgreSQL refuses more
    assert (tmp_path / "users.key").stat().st_uid == 10001
    summary = load_material(TlsFiles(tmp_path / "postgres.pem", tmp_path / "postgres.key")).summary
    assert "DNS:postgres" in summary
