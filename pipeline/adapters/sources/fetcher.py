"""The real :class:`~pipeline.ports.SourceFetcher`: local folders, git clones, archives.

Every local path a source names (a folder, an archive file, a ``file://`` URL's path) is
checked against the :class:`~pipeline.sources.policy.LocalSourcePolicy` again here, after
the API checked it at submission: a symlink swapped in between is refused too.

PATH: the folder itself (never copied). Its commit is ``HEAD`` only when the folder is
the top of a git work tree (``GIT_CEILING_DIRECTORIES`` stops the search for a parent
repository) and ``git status --porcelain`` is empty, untracked files included: a dirty
tree's content is not the commit's, and the producer then names the tree by a digest of
its files. A folder git refuses (another owner, ``safe.directory``) or a missing git
binary also give None.

GIT: a shallow clone into ``workdir/checkout``, of a branch or tag (``clone --depth 1
--branch REF``), or of a 40-hex commit or a full ref name such as ``refs/pull/7/head``
(``init`` + ``fetch --depth 1 URL SHA|REF`` + ``checkout --detach``; fetching a commit by
id needs a server that allows it, as GitHub does).
Hardening: ``protocol.allow=never`` with only https and ssh re-allowed (file too when
``allow_local_git``, for tests), ``--`` before every URL, no templates and no hooks, no
system or user git config (``GIT_CONFIG_NOSYSTEM``, ``GIT_CONFIG_GLOBAL=/dev/null``,
``HOME`` inside ``workdir``), no prompts (``GIT_TERMINAL_PROMPT=0``, ``GIT_ASKPASS``,
ssh ``BatchMode=yes``), Git LFS pointers left as they are, and a minimal environment:
``PATH`` is git's folder plus the system default; what a deployment needs on top
(proxies, a CA file, ``SSH_AUTH_SOCK``, credential helpers through ``GIT_CONFIG_*``) is
passed as ``git_env``; a CA bundle for https remotes is the ``source_git_ca_file``
setting. A tenant's credential for the URL (:mod:`pipeline.credentials`: the one whose
scope covers it most narrowly) is handed to git by
:mod:`pipeline.adapters.sources.git_auth`, never in argv, the URL or a message: every
error is scrubbed of it first. The whole fetch runs under ``clone_timeout_s``; git and its
children (ssh, remote helpers) run in their own process group, killed as one.

ARCHIVE: :func:`pipeline.adapters.sources.archives.extract_tar_gz` (its docstring lists the
checks); an archive holding one top-level folder (an sdist) is indexed from that folder.

Every failure is an InvalidInputError naming the source with credentials redacted. A
clone that failed on the network (git says the host did not resolve, the connection was
refused or reset, the remote hung up) is tried again, CLONE_ATTEMPTS in all.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from config.settings import QuarrySettings, protected_folders
from pipeline.adapters.sources.archives import ArchiveLimits, extract_tar_gz
from pipeline.adapters.sources.git_auth import NO_AUTH, GitAuth, git_auth
from pipeline.credentials.material import GitCredential
from pipeline.credentials.redaction import redact
from pipeline.errors import ConfigError, InvalidInputError
from pipeline.jobs import JobSource, SourceKind
from pipeline.ports import UploadStore
from pipeline.sources.locations import check_git_url, check_ref, is_commit_sha, redact_url
from pipeline.sources.policy import (
    UPLOADS_FOLDER,
    LocalSourcePolicy,
    check_folder_ref,
    is_bare_repository,
)
from pipeline.sources.uploads import upload_id_of

log = logging.getLogger("quarry.sources")

_MAX_MESSAGE_CHARS = 300
_LOCAL_GIT_TIMEOUT_S = 30.0
_HASH_LENGTHS = (40, 64)


class _GitTimeoutError(Exception):
    pass


class _GitFailedError(Exception):
    pass


# git's messages for a network that failed on the way, not for a wrong URL or ref: such a
# clone is tried again (CLONE_ATTEMPTS in all, within the clone timeout).
_NETWORK_ERRORS = (
    "could not resolve host",
    "temporary failure in name resolution",
    "connection timed out",
    "connection refused",
    "connection reset",
    "operation timed out",
    "the remote end hung up unexpectedly",
    "early eof",
    "rpc failed",
    "network is unreachable",
    "the requested url returned error: 502",
    "the requested url returned error: 503",
    "the requested url returned error: 504",
)
CLONE_ATTEMPTS = 3
CLONE_BACKOFF_S = 2.0


def is_network_error(message: str) -> bool:
    """Whether git's error line says the network failed (worth another attempt)."""
    lowered = message.lower()
    return any(pattern in lowered for pattern in _NETWORK_ERRORS)


CredentialLookup = Callable[[str, str], GitCredential | None]
"""(tenant, git URL) -> the tenant's credential for that URL, opened; None if none."""


class LocalSourceFetcher:
    """Fetches a :class:`JobSource` onto the local disk under the given limits."""

    def __init__(
        self,
        *,
        policy: LocalSourcePolicy,
        max_archive_bytes: int,
        max_extracted_bytes: int,
        max_members: int,
        clone_timeout_s: float,
        git_bin: str = "git",
        allow_local_git: bool = False,
        git_env: Mapping[str, str] | None = None,
        uploads: UploadStore | None = None,
        credentials: CredentialLookup | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self._limits = ArchiveLimits(
            max_archive_bytes=max_archive_bytes,
            max_extracted_bytes=max_extracted_bytes,
            max_members=max_members,
        )
        self._policy = policy
        self._clone_timeout_s = clone_timeout_s
        self._git_bin = git_bin
        self._allow_local_git = allow_local_git
        self._git_env = dict(git_env or {})
        self._uploads = uploads
        self._credentials = credentials
        if ca_file is not None:
            self._git_env.setdefault("GIT_SSL_CAINFO", str(ca_file))

    def fetch(
        self, source: JobSource, workdir: Path, *, tenant: str | None = None
    ) -> tuple[Path, str | None]:
        upload_id = upload_id_of(source.location) if source.kind is SourceKind.ARCHIVE else None
        if upload_id is not None:
            return self._fetch_upload(upload_id, tenant, workdir), None
        local = self._policy.check_fetch(source)
        if source.kind is SourceKind.PATH and local is not None:
            return self._fetch_path(source, local, workdir)
        if source.kind is SourceKind.ARCHIVE and local is not None:
            tree = workdir / "tree"
            tree.mkdir(parents=True, exist_ok=True)
            return extract_tar_gz(
                local, tree, self._limits, shown=f"archive {source.location}"
            ), None
        if source.kind is SourceKind.GIT:
            return self._clone(source, workdir, tenant)
        raise InvalidInputError(f"source {source.describe()!r}: unknown kind {source.kind!r}")

    # -- uploaded archives -------------------------------------------------------------

    def _fetch_upload(self, upload_id: str, tenant: str | None, workdir: Path) -> Path:
        """The upload's parts into ``workdir`` (within the archive size limit), extracted."""
        if self._uploads is None or tenant is None:
            raise ConfigError("this fetcher reads no uploaded archives (no upload store)")
        archive = workdir / "upload.tar.gz"
        workdir.mkdir(parents=True, exist_ok=True)
        size = 0
        with archive.open("wb") as out:
            for part in self._uploads.read(upload_id, tenant):
                size += len(part)
                if size > self._limits.max_archive_bytes:
                    raise InvalidInputError(
                        "the uploaded archive is larger than"
                        f" {self._limits.max_archive_bytes} bytes"
                    )
                out.write(part)
        tree = workdir / "tree"
        tree.mkdir(parents=True, exist_ok=True)
        try:
            return extract_tar_gz(archive, tree, self._limits, shown="the uploaded archive")
        finally:
            archive.unlink(missing_ok=True)

    # -- PATH ------------------------------------------------------------------------

    def _fetch_path(
        self, source: JobSource, folder: Path, workdir: Path
    ) -> tuple[Path, str | None]:
        if not folder.exists():
            raise InvalidInputError(f"path does not exist: {source.location}")
        if not folder.is_dir():
            raise InvalidInputError(f"not a directory: {source.location}")
        check_folder_ref(source, folder)
        if is_bare_repository(folder):
            # A bare repository is read as git, at the job's ref or its HEAD: its files
            # are that commit's, never its hooks, objects and refs.
            ref = None if source.ref is None else check_ref(source.ref)
            return self._clone_with(folder.as_uri(), ref, self._git(), workdir, NO_AUTH, local=True)
        return folder, self._clean_head(folder)

    def _git(self) -> str:
        """The git executable's path; ConfigError naming it where there is none."""
        git = shutil.which(self._git_bin)
        if git is None:
            raise ConfigError(f"git executable {self._git_bin!r} not found")
        return git

    def _clean_head(self, folder: Path) -> str | None:
        git = shutil.which(self._git_bin)
        if git is None:
            return None
        env = self._env(git, Path(os.devnull)) | {"GIT_CEILING_DIRECTORIES": str(folder.parent)}
        base = [git, "--no-optional-locks", *_SAFE_CONFIG, "-C", str(folder)]
        deadline = time.monotonic() + _LOCAL_GIT_TIMEOUT_S
        try:
            # The repository's own config may hide untracked files (status.showUntrackedFiles).
            status_args = ["status", "--porcelain", "--untracked-files=normal"]
            status = _run([*base, *status_args], env, deadline)
            if status.strip():
                return None
            return _commit_id(_run([*base, "rev-parse", "--verify", "HEAD"], env, deadline))
        except (_GitFailedError, _GitTimeoutError):
            return None

    # -- GIT -------------------------------------------------------------------------

    def _clone(
        self, source: JobSource, workdir: Path, tenant: str | None
    ) -> tuple[Path, str | None]:
        url = check_git_url(source.location, allow_file_urls=self._allow_local_git)
        ref = None if source.ref is None else check_ref(source.ref)
        git = self._git()
        credential = None
        if self._credentials is not None and tenant is not None:
            credential = self._credentials(tenant, url)
        with git_auth(credential, url, workdir) as auth:
            return self._clone_with(url, ref, git, workdir, auth)

    def _clone_with(
        self,
        url: str,
        ref: str | None,
        git: str,
        workdir: Path,
        auth: GitAuth,
        *,
        local: bool = False,
    ) -> tuple[Path, str | None]:
        """Clone ``url`` at ``ref``; ``local``: a bare repository the policy allowed (file
        protocol only)."""
        dest = workdir / "checkout"
        env = self._env(git, workdir) | auth.env
        protocols = ["https", "ssh", *(["file"] if self._allow_local_git else [])]
        if local:
            protocols = ["file"]
        base = [git, *_SAFE_CONFIG, "-c", "protocol.allow=never", *auth.config]
        for protocol in protocols:
            base += ["-c", f"protocol.{protocol}.allow=always"]
        deadline = time.monotonic() + self._clone_timeout_s
        shown = redact_url(url)
        for attempt in range(1, CLONE_ATTEMPTS + 1):
            try:
                return self._clone_once(
                    base=base, git=git, url=url, ref=ref, dest=dest, env=env, deadline=deadline
                )
            except _GitTimeoutError:
                raise InvalidInputError(
                    f"could not clone {shown}: timed out after {self._clone_timeout_s:g} s"
                ) from None
            except _GitFailedError as exc:
                what = f"{ref} from {shown}" if ref else shown
                wait_s = CLONE_BACKOFF_S * attempt
                message = redact(str(exc), auth.fragments)
                network = is_network_error(message)
                if not network or attempt == CLONE_ATTEMPTS or time.monotonic() + wait_s > deadline:
                    tries = f" ({attempt} attempts)" if network else ""
                    raise InvalidInputError(f"could not clone {what}{tries}: {message}") from None
                log.warning(
                    "clone of %s failed (%s); attempt %d in %.0f s",
                    shown,
                    message,
                    attempt + 1,
                    wait_s,
                )
                shutil.rmtree(dest, ignore_errors=True)
                time.sleep(wait_s)
        raise AssertionError("unreachable")  # pragma: no cover

    def _clone_once(
        self,
        *,
        base: list[str],
        git: str,
        url: str,
        ref: str | None,
        dest: Path,
        env: dict[str, str],
        deadline: float,
    ) -> tuple[Path, str | None]:
        shown = redact_url(url)
        # A commit, or a full ref name (refs/heads/x, refs/tags/v1, refs/pull/7/head, which
        # `clone --branch` does not take): fetched alone, then checked out.
        if ref is not None and (is_commit_sha(ref) or ref.startswith("refs/")):
            _run([*base, "init", "--quiet", "--template=", "--", str(dest)], env, deadline)
            in_dest = [*base, "-C", str(dest)]
            fetch = ["fetch", "--quiet", "--depth", "1", "--no-tags", "--", url, ref]
            _run([*in_dest, *fetch], env, deadline)
            _run([*in_dest, "checkout", "--quiet", "--detach", "FETCH_HEAD"], env, deadline)
        else:
            branch = [] if ref is None else ["--branch", ref]
            clone = ["clone", "--quiet", "--depth", "1", "--no-tags", "--single-branch"]
            args = [*clone, "--template=", *branch, "--", url, str(dest)]
            _run([*base, *args], env, deadline)
        head = _commit_id(_run([git, "-C", str(dest), "rev-parse", "HEAD"], env, deadline))
        if head is None or (is_commit_sha(ref) and head != ref):
            raise InvalidInputError(f"could not clone {shown}: HEAD is {head}, not {ref}")
        return dest, head

    def _env(self, git: str, home: Path) -> dict[str, str]:
        search = dict.fromkeys([str(Path(git).parent), *os.defpath.split(os.pathsep)])
        return {
            "PATH": os.pathsep.join(p for p in search if p),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home),
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "true",
            "SSH_ASKPASS": "true",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
            "GIT_LFS_SKIP_SMUDGE": "1",
        } | self._git_env


_SAFE_CONFIG = (
    "-c", "core.hooksPath=" + os.devnull,
    "-c", "core.fsmonitor=false",
    "-c", "advice.detachedHead=false",
    "-c", "init.defaultBranch=main",
)  # fmt: skip


def source_policy_from(settings: QuarrySettings) -> LocalSourcePolicy:
    """The local paths jobs may read: the allowed roots, never the protected folders;
    archives in the API's upload folder are the service's own."""
    return LocalSourcePolicy.build(
        settings.source_allowed_roots,
        protected_folders(settings),
        uploads=settings.data_dir / UPLOADS_FOLDER,
    )


def fetcher_from_settings(
    settings: QuarrySettings,
    uploads: UploadStore | None = None,
    credentials: CredentialLookup | None = None,
) -> LocalSourceFetcher:
    """The fetcher the API (dry runs) and the ingest workers use, with the source limits;
    ``uploads``: where the ingest workers read uploaded archives from; ``credentials``:
    the tenants' git credentials."""
    return LocalSourceFetcher(
        uploads=uploads,
        credentials=credentials,
        ca_file=settings.source_git_ca_file,
        policy=source_policy_from(settings),
        max_archive_bytes=settings.source_max_archive_bytes,
        max_extracted_bytes=settings.source_max_extracted_bytes,
        max_members=settings.source_max_members,
        clone_timeout_s=settings.source_clone_timeout_s,
        allow_local_git=settings.source_allow_file_urls,
    )


def _run(args: Sequence[str], env: Mapping[str, str], deadline: float) -> str:
    """stdout of ``args``; _GitFailedError with git's last error line, or _GitTimeoutError."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _GitTimeoutError
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            start_new_session=True,  # one process group: git, ssh and remote helpers
        )
    except OSError as exc:
        raise _GitFailedError(f"cannot run git: {exc.strerror}") from exc
    try:
        out, err = proc.communicate(timeout=remaining)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise _GitTimeoutError from None
    if proc.returncode != 0:
        raise _GitFailedError(_last_error_line(err.decode("utf-8", "replace"), proc.returncode))
    return out.decode("utf-8", "replace")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


# ssh's own lines say more than git's "fatal: Could not read from remote repository".
_SSH_ERRORS = {
    "host key verification failed": "the server's host key is not the pinned one",
    "permission denied (publickey": "the server refused the deploy key",
}


def _last_error_line(stderr: str, returncode: int) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
    line = (errors or lines or [f"git exited with status {returncode}"])[-1]
    ssh = ((ln, h) for key, h in _SSH_ERRORS.items() for ln in lines if key in ln.lower())
    found = next(ssh, None)
    if found is not None:
        line = f"{found[0].rstrip('.')} ({found[1]})"
    line = redact_url(line)
    return line if len(line) <= _MAX_MESSAGE_CHARS else line[: _MAX_MESSAGE_CHARS - 1] + "…"


def _commit_id(output: str) -> str | None:
    text = output.strip()
    valid = len(text) in _HASH_LENGTHS and all(c in "0123456789abcdef" for c in text)
    return text if valid else None
