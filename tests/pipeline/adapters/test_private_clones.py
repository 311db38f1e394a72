"""The fetcher clones private repositories from real servers on loopback (git
http-backend behind Basic auth over TLS, sshd with a deploy key), in this process: the
secret never reaches a git or ssh command line nor git's environment, a failure names
the cause without the secret, and the scratch credentials are gone after each clone."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.adapters.sources import fetcher as fetcher_module
from pipeline.adapters.sources.fetcher import LocalSourceFetcher
from pipeline.adapters.sources.git_auth import AUTH_FOLDER
from pipeline.credentials.material import CredentialKind, GitCredential
from pipeline.errors import InvalidInputError
from pipeline.jobs import JobSource, SourceKind
from pipeline.sources.policy import LocalSourcePolicy
from tests.security.git_servers import (
    GitHttpServer,
    SshServer,
    bare_repo,
    git_http_server,
    loopback_certificates,
    new_ssh_key,
    sshd,
)

pytestmark = pytest.mark.timeout(120)
TOKEN = "qtest_tok_" + "A1b2C3d4" * 4


@pytest.fixture
def served(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "vault_secret_module.py").write_text("def hidden():\n    return 42\n")
    return bare_repo(tree, tmp_path / "srv" / "private.git")


@pytest.fixture
def ca_file(tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    certificates = loopback_certificates(tmp_path / "tls")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certificates.ca_pem)
    yield ca, certificates


@pytest.fixture
def https(served: Path, ca_file: tuple[Path, Any]) -> Iterator[GitHttpServer]:
    with git_http_server(served.parent, ca_file[1], user="bot", token=TOKEN) as server:
        yield server


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, str]]]:
    """Every command the fetcher runs, with its environment."""
    seen: list[tuple[list[str], dict[str, str]]] = []
    real = subprocess.Popen

    def recording(args: list[str], **kwargs: Any) -> Any:
        seen.append((list(args), dict(kwargs.get("env") or {})))
        return real(args, **kwargs)

    monkeypatch.setattr(fetcher_module.subprocess, "Popen", recording)
    return seen


def fetcher(credential: GitCredential | None, ca: Path | None = None) -> LocalSourceFetcher:
    return LocalSourceFetcher(
        policy=LocalSourcePolicy.build([Path("/")], []),
        max_archive_bytes=10**7,
        max_extracted_bytes=10**8,
        max_members=10_000,
        clone_timeout_s=60,
        credentials=lambda tenant, url: credential if tenant == "tenant-a" else None,
        ca_file=ca,
    )


def token(secret: str = TOKEN) -> GitCredential:
    return GitCredential("forge", CredentialKind.HTTPS_TOKEN, "https://127.0.0.1", "bot", secret)


def assert_no_secret(secret: str, commands: list[tuple[list[str], dict[str, str]]]) -> None:
    assert commands
    for args, env in commands:
        assert not any(secret in a for a in args), args
        assert not any(secret in v for v in env.values()), env


def test_a_token_clones_over_https_without_reaching_argv_or_env(
    https: GitHttpServer,
    ca_file: tuple[Path, Any],
    tmp_path: Path,
    commands: list[tuple[list[str], dict[str, str]]],
) -> None:
    source = JobSource(SourceKind.GIT, f"{https.url}/private.git")
    work = tmp_path / "work"
    root, commit = fetcher(token(), ca_file[0]).fetch(source, work, tenant="tenant-a")
    assert (root / "vault_secret_module.py").exists() and commit is not None
    assert not (work / AUTH_FOLDER).exists()
    assert https.served > 0
    assert_no_secret(TOKEN, commands)


@pytest.mark.parametrize("tenant", ["tenant-a", "tenant-b"])
def test_a_wrong_or_missing_token_fails_clearly_without_the_token(
    https: GitHttpServer, ca_file: tuple[Path, Any], tmp_path: Path, tenant: str
) -> None:
    https.token = "rotated-on-the-forge-9876"
    source = JobSource(SourceKind.GIT, f"{https.url}/private.git")
    with pytest.raises(InvalidInputError, match="Authentication failed") as caught:
        fetcher(token(), ca_file[0]).fetch(source, tmp_path / "work", tenant=tenant)
    assert TOKEN not in str(caught.value) and "rotated-on" not in str(caught.value)
    assert not (tmp_path / "work" / AUTH_FOLDER).exists()


def test_without_the_ca_the_server_is_not_trusted(https: GitHttpServer, tmp_path: Path) -> None:
    source = JobSource(SourceKind.GIT, f"{https.url}/private.git")
    with pytest.raises(InvalidInputError, match=r"certificate|SSL") as caught:
        fetcher(token()).fetch(source, tmp_path / "work", tenant="tenant-a")
    assert TOKEN not in str(caught.value)
    assert https.served == 0


@pytest.fixture
def ssh_server(tmp_path: Path, served: Path) -> Iterator[tuple[SshServer, Any]]:
    deploy = new_ssh_key()
    with sshd(tmp_path / "sshd", deploy) as server:
        yield server, deploy


def key_credential(private: str, pin: str, port: int) -> GitCredential:
    scope = f"ssh://127.0.0.1:{port}"
    return GitCredential("deploy", CredentialKind.SSH_KEY, scope, None, private, pin + "\n")


def test_a_deploy_key_clones_over_ssh_with_the_pinned_host_key(
    ssh_server: tuple[SshServer, Any],
    served: Path,
    tmp_path: Path,
    commands: list[tuple[list[str], dict[str, str]]],
) -> None:
    server, deploy = ssh_server
    credential = key_credential(deploy.private_openssh, server.known_hosts_line, server.port)
    source = JobSource(SourceKind.GIT, server.url(served))
    work = tmp_path / "work"
    root, _ = fetcher(credential).fetch(source, work, tenant="tenant-a")
    assert (root / "vault_secret_module.py").exists()
    assert not (work / AUTH_FOLDER).exists()
    key_line = deploy.private_openssh.splitlines()[1]
    assert_no_secret(key_line, commands)


def test_a_host_key_other_than_the_pinned_one_is_refused(
    ssh_server: tuple[SshServer, Any], served: Path, tmp_path: Path
) -> None:
    server, deploy = ssh_server
    impostor = f"[127.0.0.1]:{server.port} {new_ssh_key().public_line}"
    credential = key_credential(deploy.private_openssh, impostor, server.port)
    source = JobSource(SourceKind.GIT, server.url(served))
    with pytest.raises(InvalidInputError, match="Host key verification failed") as caught:
        fetcher(credential).fetch(source, tmp_path / "work", tenant="tenant-a")
    assert "not the pinned one" in str(caught.value)
    assert deploy.private_openssh.splitlines()[1] not in str(caught.value)


def test_a_key_the_server_does_not_know_is_refused(
    ssh_server: tuple[SshServer, Any], served: Path, tmp_path: Path
) -> None:
    server, _ = ssh_server
    stranger = new_ssh_key()
    credential = key_credential(stranger.private_openssh, server.known_hosts_line, server.port)
    source = JobSource(SourceKind.GIT, server.url(served))
    with pytest.raises(InvalidInputError, match="Permission denied") as caught:
        fetcher(credential).fetch(source, tmp_path / "work", tenant="tenant-a")
    assert "refused the deploy key" in str(caught.value)
