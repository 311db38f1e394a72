"""How a clone gets a tenant's credential without it reaching argv, a URL or a log.

Everything lives in a folder of its own inside the fetch's scratch folder (mode 0700,
files 0600), deleted when the clone ends, failed or not:

* an HTTPS token: a ``git-credential-store`` file (``https://user:token@host``, the
  parts percent-encoded) that git's built-in ``store`` helper reads when the server
  asks for credentials (``-c credential.helper=store --file=<path>``: only the path is in
  argv). Redirects are not followed (``http.followRedirects=false``), so the token is
  never handed to a host that a redirect names.
* an SSH deploy key: the key file and a known_hosts file holding only the pinned lines;
  ``GIT_SSH_COMMAND`` runs ssh with no config file (``-F /dev/null``), that key alone
  (``IdentitiesOnly``, no agent), that known_hosts alone and ``StrictHostKeyChecking=yes``:
  a server whose host key is not the pinned one is refused before anything is sent.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from pipeline.credentials.material import CredentialKind, GitCredential
from pipeline.credentials.redaction import secret_fragments
from pipeline.credentials.scopes import address_of

AUTH_FOLDER = ".quarry-auth"


@dataclass(frozen=True, slots=True)
class GitAuth:
    """What a clone adds for its credential: git ``-c`` options (no secret in them), its
    environment (no secret in it either: paths only) and the fragments to redact."""

    config: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    fragments: tuple[str, ...] = ()


NO_AUTH = GitAuth()


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


@contextmanager
def git_auth(credential: GitCredential | None, url: str, workdir: Path) -> Iterator[GitAuth]:
    """The options and environment that give ``credential`` to git for ``url``."""
    address = address_of(url)
    if credential is None or address is None:
        yield NO_AUTH
        return
    folder = workdir / AUTH_FOLDER
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700, parents=True)
    try:
        fragments = tuple(secret_fragments(credential))
        if credential.kind is CredentialKind.HTTPS_TOKEN:
            store = folder / "credentials"
            user = quote(credential.username or "", safe="")
            host = address.host if address.port == 443 else f"{address.host}:{address.port}"
            _write_private(store, f"https://{user}:{quote(credential.secret, safe='')}@{host}\n")
            config = (
                "-c", "credential.helper=",
                "-c", f"credential.helper=store --file={store}",
                "-c", "http.followRedirects=false",
            )  # fmt: skip
            yield GitAuth(config=config, fragments=fragments)
        else:
            key, known = folder / "deploy_key", folder / "known_hosts"
            _write_private(key, credential.secret)
            _write_private(known, credential.known_hosts or "")
            yield GitAuth(env={"GIT_SSH_COMMAND": ssh_command(key, known)}, fragments=fragments)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def ssh_command(key: Path, known_hosts: Path) -> str:
    """The ssh that git runs (through a shell, hence the quoting) for a deploy key."""
    options = [
        "-F", os.devnull,
        "-i", str(key),
        "-o", "IdentitiesOnly=yes",
        "-o", "IdentityAgent=none",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", f"GlobalKnownHostsFile={os.devnull}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "UpdateHostKeys=no",
        "-o", "CheckHostIP=no",
        "-o", "BatchMode=yes",
        "-o", "PasswordAuthentication=no",
        "-o", "KbdInteractiveAuthentication=no",
    ]  # fmt: skip
    return shlex.join(["ssh", *options])
