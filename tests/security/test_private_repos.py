"""Private repositories end to end, on the session stack (real API and workers) against
real git servers on loopback: ``git http-backend`` behind Basic auth (TLS, the test
CA in ``source_git_ca_file``) and ``sshd`` with a deploy key.

A tenant's token or deploy key indexes its private repository; the forge rotating the
token fails the next job with a clear error, and rotating the credential (through the
CLI, the secret on stdin) mends it. A host key other than the pinned one is refused.
A hostile tenant can neither list, use, rotate nor remove another's credential (404,
the same as a name never used). No secret appears in an answer (the list, a job and
its errors, search results, 422s), a log file of the stack, or PostgreSQL in clear.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from config.endpoints import Endpoints
from config.settings import QuarrySettings
from tests.security.git_servers import (
    GitHttpServer,
    SshKey,
    SshServer,
    bare_repo,
    git_http_server,
    loopback_certificates,
    new_ssh_key,
    sshd,
)
from tests.security.helpers import Tenant, enqueue, index, wait
from tests.stackutil import QUARRY

pytestmark = pytest.mark.timeout(300)
MARKER = "quillfeather"
TOKEN_1 = "qforge_" + uuid.uuid4().hex + "T1"
TOKEN_2 = "qforge_" + uuid.uuid4().hex + "T2"


@dataclass
class Forge:
    https: GitHttpServer
    ssh: SshServer
    deploy: SshKey
    repo: Path  # the bare repository, served by both

    @property
    def https_url(self) -> str:
        return f"{self.https.url}/{self.repo.name}"

    @property
    def ssh_scope(self) -> str:
        return self.ssh.url(self.repo.parent)


@pytest.fixture(scope="module")
def forge(
    stack_settings: QuarrySettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Forge]:
    root = tmp_path_factory.mktemp("forge")
    tree = root / "tree"
    tree.mkdir()
    (tree / f"{MARKER}_ledger.py").write_text(
        f"class {MARKER.title()}Ledger:\n    def settle_{MARKER}(self, amount):\n"
        "        return amount * 2\n"
    )
    repo = bare_repo(tree, root / "srv" / "private.git")
    certificates = loopback_certificates(root / "tls")
    assert stack_settings.source_git_ca_file is not None
    stack_settings.source_git_ca_file.write_bytes(certificates.ca_pem)
    deploy = new_ssh_key()
    with (
        git_http_server(repo.parent, certificates, user="bot", token=TOKEN_1) as https,
        sshd(root / "sshd", deploy) as ssh,
    ):
        yield Forge(https, ssh, deploy, repo)


def secrets_of(forge: Forge) -> list[str]:
    return [TOKEN_1, TOKEN_2, *forge.deploy.private_openssh.splitlines()[1:-1]]


def assert_clean(text: str, forge: Forge) -> None:
    leaked = [s[:12] for s in secrets_of(forge) if s and s in text]
    where = [
        text[max(0, text.find(s) - 200) : text.find(s) + 50]
        for s in secrets_of(forge)
        if s and s in text
    ]
    assert not leaked, f"secrets leaked: {leaked} in {where}"


def add_token(api: httpx.Client, forge: Forge, token: str, name: str = "forge") -> httpx.Response:
    body = {"name": name, "kind": "https_token", "scope": forge.https.url, "username": "bot"}
    return api.post("/v1/credentials", json=body | {"token": token})


def failed_job(api: httpx.Client, forge: Forge, **body: Any) -> dict[str, Any]:
    status = wait(api, enqueue(api, **body))
    assert status["status"] == "failed", status
    return status


def cli(tenant: Tenant, endpoints: Endpoints, *args: str, stdin: str = "") -> str:
    env = {**os.environ, "QUARRY_API_URL": endpoints.api_url, "QUARRY_API_TOKEN": tenant.token}
    done = subprocess.run(
        [QUARRY, "credentials", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_a_token_indexes_a_private_repo_and_rotation_mends_a_forge_rotation(
    forge: Forge,
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
    endpoints: Endpoints,
    secrets_used: list[str],
) -> None:
    secrets_used.extend([TOKEN_1, TOKEN_2])
    owner = new_tenant("private-https")
    api = client_for(owner)
    created = add_token(api, forge, TOKEN_1)
    assert created.status_code == 201, created.text
    assert created.json()["scope"] == forge.https.url and created.json()["fingerprint"] is None
    index(api, source=forge.https_url, repo="priv-https")
    hits = api.get("/v1/search", params={"q": f"settle_{MARKER}", "repo": "priv-https"})
    assert hits.status_code == 200 and MARKER in hits.text

    forge.https.token = TOKEN_2  # rotated on the forge: the stored token is stale
    stale = failed_job(api, forge, source=forge.https_url, repo="priv-https-2")
    assert "Authentication failed" in stale["message"], stale

    # The CLI reads the new token from stdin, never from its arguments.
    shown = cli(owner, endpoints, "rotate", "forge", "--token-file", "-", stdin=TOKEN_2 + "\n")
    assert '"name": "forge"' in shown
    index(api, source=forge.https_url, repo="priv-https-3")

    listed = api.get("/v1/credentials")
    assert [c["name"] for c in listed.json()["credentials"]] == ["forge"]
    answers = [created.text, listed.text, json.dumps(stale), shown, hits.text]
    answers += [api.get("/v1/jobs").text]
    # Searching for a token finds nothing of it (the answer echoes the query itself).
    for token in (TOKEN_1, TOKEN_2):
        answers.append(json.dumps(api.get("/v1/search", params={"q": token}).json()["results"]))
    assert_clean("\n".join(answers), forge)


def test_a_hostile_tenant_can_neither_see_use_rotate_nor_remove_anothers_credential(
    forge: Forge,
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
) -> None:
    forge.https.token = TOKEN_1
    owner, hostile = client_for(new_tenant("cred-owner")), client_for(new_tenant("cred-hostile"))
    assert add_token(owner, forge, TOKEN_1, name="shared-forge").status_code == 201
    assert hostile.get("/v1/credentials").json() == {"credentials": []}
    for name in ("shared-forge", "never-used"):
        rotated = hostile.put(f"/v1/credentials/{name}", json={"token": "hostile-token-1"})
        removed = hostile.delete(f"/v1/credentials/{name}")
        assert (rotated.status_code, removed.status_code) == (404, 404), (name, rotated.text)
        assert rotated.json()["detail"] == f"credential {name!r} not found"
    # Its job on the owner's URL clones without any credential, and fails.
    stolen = failed_job(hostile, forge, source=forge.https_url, repo="stolen")
    assert "Authentication failed" in stolen["message"]
    assert hostile.get("/v1/search", params={"q": f"settle_{MARKER}"}).json()["results"] == []
    # Its own credential of the same name and scope is its own, and does not touch the owner's.
    assert add_token(hostile, forge, "hostile-token-2", name="shared-forge").status_code == 201
    index(owner, source=forge.https_url, repo="owner-after-hostile")
    assert_clean(json.dumps(stolen), forge)


def test_a_deploy_key_indexes_over_ssh_and_an_unpinned_host_key_is_refused(
    forge: Forge,
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
    endpoints: Endpoints,
    tmp_path: Path,
) -> None:
    owner = new_tenant("private-ssh")
    key_file, pin_file = tmp_path / "deploy_key", tmp_path / "known_hosts"
    key_file.write_text(forge.deploy.private_openssh)
    pin_file.write_text(forge.ssh.known_hosts_line + "\n")
    shown = cli(
        owner,
        endpoints,
        "add",
        "deploy",
        "--scope",
        forge.ssh_scope,
        "--key-file",
        str(key_file),
        "--known-hosts-file",
        str(pin_file),
    )
    assert "SHA256:" in shown
    api = client_for(owner)
    index(api, source=forge.ssh.url(forge.repo), repo="priv-ssh")
    hits = api.get("/v1/search", params={"q": f"settle_{MARKER}", "repo": "priv-ssh"})
    assert MARKER in hits.text

    impostor = client_for(new_tenant("ssh-impostor"))
    wrong_pin = f"[127.0.0.1]:{forge.ssh.port} {new_ssh_key().public_line}"
    body = {
        "name": "deploy",
        "kind": "ssh_key",
        "scope": forge.ssh_scope,
        "private_key": forge.deploy.private_openssh,
        "known_hosts": wrong_pin,
    }
    assert impostor.post("/v1/credentials", json=body).status_code == 201
    refused = failed_job(impostor, forge, source=forge.ssh.url(forge.repo), repo="pinned")
    message = refused["message"]
    assert "Host key verification failed" in message and "not the pinned one" in message
    assert_clean("\n".join([shown, hits.text, message, api.get("/v1/credentials").text]), forge)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAqforgeT1\n"}, "private_key"),
        ({"known_hosts": "[127.0.0.1]:1 ssh-ed25519 AAAA"}, "known_hosts"),
        ({"known_hosts": ""}, "known_hosts"),
        ({"scope": "http://127.0.0.1/x"}, "scope"),
        ({"name": "Bad Name"}, "name"),
        ({"kind": "password"}, "kind"),
        ({"kind": "https_token", "scope": "https://127.0.0.1/x"}, "known_hosts"),
        (
            {
                "kind": "https_token",
                "scope": "https://127.0.0.1/x",
                "known_hosts": None,
                "private_key": None,
            },
            "token",
        ),
        (
            {"kind": "https_token", "scope": "https://127.0.0.1/x", "known_hosts": None},
            "private_key",
        ),
    ],
)
def test_bad_credentials_are_422_naming_the_field_and_never_echoing_the_secret(
    forge: Forge,
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
    change: dict[str, str | None],
    field: str,
) -> None:
    api = client_for(new_tenant("cred-422"))
    body = {
        "name": "deploy",
        "kind": "ssh_key",
        "scope": forge.ssh_scope,
        "private_key": forge.deploy.private_openssh,
        "known_hosts": forge.ssh.known_hosts_line,
    } | change
    answer = api.post("/v1/credentials", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(f"{field}:"), answer.text
    assert_clean(answer.text, forge)
    assert "AAAAqforgeT1" not in answer.text
    assert api.get("/v1/credentials").json() == {"credentials": []}


def test_a_token_with_a_newline_or_of_the_wrong_type_is_422_without_an_echo(
    forge: Forge,
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
) -> None:
    api = client_for(new_tenant("cred-newline"))
    answer = add_token(api, forge, TOKEN_1 + "\nX-Injected: 1")
    assert answer.status_code == 422 and answer.json()["detail"].startswith("token:")
    typed = api.post(
        "/v1/credentials", json={"name": "x", "kind": "https_token", "token": [TOKEN_1]}
    )
    assert typed.status_code == 422
    assert_clean(answer.text + typed.text, forge)


def test_credentials_at_rest_are_ciphertext(
    forge: Forge,
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
    endpoints: Endpoints,
) -> None:
    tenant = new_tenant("cred-rest")
    assert add_token(client_for(tenant), forge, TOKEN_1).status_code == 201
    with psycopg.connect(endpoints.postgres_dsn) as conn:
        rows = conn.execute(
            "SELECT tenant_id, name, kind, scope, username, known_hosts, fingerprint, key_id,"
            " ciphertext FROM credentials"
        ).fetchall()
    assert any(r[0] == tenant.name for r in rows)
    for row in rows:
        assert TOKEN_1.encode() not in bytes(row[8])
        assert_clean(repr(row[:8]), forge)


def test_the_stacks_logs_hold_no_credential(forge: Forge, stack_settings: QuarrySettings) -> None:
    """After the tests above: every log file the stack wrote."""
    data_dir = stack_settings.data_dir
    files = set((data_dir / "logs").rglob("*")) | set(data_dir.rglob("*.log"))
    files = {p for p in files if p.is_file()}
    assert files
    for path in files:
        assert_clean(path.read_text(encoding="utf-8", errors="replace"), forge)


def test_without_a_credentials_key_the_endpoints_answer_503_naming_the_setting(
    stack_settings: QuarrySettings,
    endpoints: Endpoints,
    new_tenant: Callable[[str], Tenant],
    tmp_path: Path,
) -> None:
    settings = stack_settings.model_copy(
        update={
            "data_dir": tmp_path,
            "postgres_dsn": endpoints.postgres_dsn,
            "redis_url": endpoints.redis_url,
            "credentials_key": None,
            "search_warm_on_start": False,
        }
    )
    tenant = new_tenant("no-key")
    with TestClient(create_app(settings)) as client:
        answer = client.get("/v1/credentials", headers={"Authorization": f"Bearer {tenant.token}"})
    assert answer.status_code == 503
    assert "QUARRY_CREDENTIALS_KEY" in answer.json()["detail"]
