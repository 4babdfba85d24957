"""PostgreSQL done safely in deploy/overlays/postgres and compose.scale.yaml: the server serves
TLS from a Secret (certs/ in compose), the users service verifies it (verify-full) and connects
as the role the init script makes, not as the superuser."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from cryptography import x509
from plumbing.tls import TlsFiles, load_material

from tests.deploy.manifests import ROOT, container, find, generated_secrets, pod_spec, render

ROLE_SCRIPT = ROOT / "deploy/overlays/postgres/initdb/10-app-role.sh"
INITDB = PurePosixPath("/docker-entrypoint-initdb.d")


class ComposeLoader(yaml.SafeLoader):
    """YAML with compose's merge tags (!override, !reset) read as their plain values."""


for _tag in ("!override", "!reset"):
    ComposeLoader.add_constructor(
        _tag,
        lambda loader, node: loader.construct_sequence(node),  # type: ignore[arg-type]
    )


def scale_file() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load((ROOT / "compose.scale.yaml").read_text(), ComposeLoader)  # noqa: S506
    return loaded


def postgres_pod() -> dict[str, Any]:
    return pod_spec(find(render("postgres"), "StatefulSet", "postgres"))


def mounted_from(pod: dict[str, Any], spec: dict[str, Any], path: PurePosixPath) -> tuple[Any, str]:
    """The volume a file path lies on, and the file's name below the mount."""
    for mount in spec["volumeMounts"]:
        if PurePosixPath(mount["mountPath"]) in path.parents:
            assert mount.get("readOnly"), mount
            [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
            return volume, str(path.relative_to(mount["mountPath"]))
    raise AssertionError(f"{path} is on no volume")


def database_url() -> Any:
    secret = find(generated_secrets("postgres"), "Secret", "users-database")
    return urlsplit(secret["stringData"]["url"])


def test_postgres_serves_tls_from_the_postgres_tls_secret() -> None:
    pod = postgres_pod()
    [spec] = pod["containers"]
    settings = dict(arg.split("=", 1) for arg in spec["args"] if "=" in arg)
    assert settings["ssl"] == "on"
    for setting, key in (("ssl_cert_file", "tls.crt"), ("ssl_key_file", "tls.key")):
        volume, name = mounted_from(pod, spec, PurePosixPath(settings[setting]))
        assert (volume["secret"]["secretName"], name) == ("postgres-tls", key)
        # Root-owned, group 999 (fsGroup), 0640: the most PostgreSQL accepts for a root-owned key.
        assert volume["secret"]["defaultMode"] == 0o640
    assert pod["securityContext"]["fsGroup"] == 999


def test_users_verify_the_database_certificate_against_the_postgres_ca_alone() -> None:
    url = database_url()
    query = parse_qs(url.query)
    assert query["sslmode"] == ["verify-full"]
    deployment = find(render("postgres"), "Deployment", "users")
    volume, name = mounted_from(
        pod_spec(deployment),
        container(render("postgres"), "users"),
        PurePosixPath(query["sslrootcert"][0]),
    )
    assert volume["secret"]["secretName"] == "postgres-tls"
    assert volume["secret"]["items"] == [{"key": "ca.crt", "path": name}]  # not the server's key


def test_the_generated_database_certificate_is_valid_for_the_url_host(tmp_path: Path) -> None:
    data = find(generated_secrets("postgres"), "Secret", "postgres-tls")["stringData"]
    for key, value in data.items():
        (tmp_path / key).write_text(value)
    files = TlsFiles(tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "ca.crt")
    assert load_material(files).summary  # the key matches the certificate
    certificate = x509.load_pem_x509_certificate(data["tls.crt"].encode())
    ca = x509.load_pem_x509_certificate(data["ca.crt"].encode())
    certificate.verify_directly_issued_by(ca)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert database_url().hostname in names.get_values_for_type(x509.DNSName)


def test_the_service_role_comes_from_the_init_script_in_both_variants() -> None:
    pod = postgres_pod()
    [spec] = pod["containers"]
    volume, _ = mounted_from(pod, spec, INITDB / ROLE_SCRIPT.name)
    config_map = find(render("postgres"), "ConfigMap", volume["configMap"]["name"])
    assert config_map["data"] == {ROLE_SCRIPT.name: ROLE_SCRIPT.read_text()}
    compose = scale_file()
    source = f"./{ROLE_SCRIPT.relative_to(ROOT)}"
    assert f"{source}:{INITDB / ROLE_SCRIPT.name}:ro" in compose["services"]["postgres"]["volumes"]


def test_compose_scaled_users_verify_the_database_as_their_own_role() -> None:
    compose = scale_file()
    postgres = compose["services"]["postgres"]
    raw = compose["services"]["users"]["environment"]["USERS_DATABASE_URL"]
    assert raw.count("${") == 1
    assert "${POSTGRES_APP_PASSWORD:?" in raw
    url = urlsplit(re.sub(r"\$\{[^}]*\}", "password", raw))  # compose fills it in
    assert parse_qs(url.query) == {"sslmode": ["verify-full"], "sslrootcert": ["/certs/ca.pem"]}
    assert url.hostname == "postgres"  # a name certs/postgres.pem carries (scripts/certs.py)
    assert url.username == postgres["environment"]["POSTGRES_APP_USER"]
    assert url.username != postgres["environment"]["POSTGRES_USER"]
    assert "ssl=on" in postgres["command"]
