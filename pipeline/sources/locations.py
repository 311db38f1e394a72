"""Job sources as a client writes them: which kind, whether they are allowed, and a name.

Owns the parsing of a source string into a :class:`~pipeline.jobs.JobSource` (a git URL,
a ``.tar.gz`` archive or a local folder), the checks that keep hostile strings away
from ``git`` (transport helpers, option injection, unsafe schemes), git ref validation
(``git check-ref-format`` rules), the redaction of credentials in URLs and the default
repository name of a source. The only file-system access is the directory check that
tells an archive file from a folder named like one.

Allowed remote schemes: ``https://``, ``ssh://`` and scp-like ``[user@]host:path``
(which git reads as ssh). Refused: plain ``http://`` (no integrity on the wire, and a
downgrade target), ``git://`` (unauthenticated), ``file://`` (reads the worker's own
disk; allowed only with ``allow_file_urls``, for tests), and every
``<transport>::<address>`` remote-helper string (``ext::`` runs a shell command,
``fd::`` reads file descriptors). Credentials in a URL (a password, or any user in an
https URL, where it is a token) are refused too: the source is stored with the job and
shown in its status; private repositories use the tenant's stored credentials
(:mod:`pipeline.credentials`, ``/v1/credentials``).

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from pipeline.errors import InvalidInputError
from pipeline.jobs import JobSource, SourceKind, check_repo_name

ALLOWED_SCHEMES = ("https", "ssh")
ALLOWED_DESCRIPTION = "https://, ssh:// or user@host:path URLs, a local folder or a .tar.gz file"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
MAX_REF_CHARS = 255

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_TRANSPORT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+.-]*::")
_SCP = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._~-]+)@)?"
    r"(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])"
    r":(?P<path>[^/].*|/.+)$"
)
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$|^\[[0-9A-Fa-f:.]+\]$")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def redact_url(text: str) -> str:
    """``text`` with the user and password of every ``scheme://user:pw@`` replaced by ``***``."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def is_commit_sha(ref: str | None) -> bool:
    """A full 40-hex commit id (lower case), as opposed to a branch or tag name."""
    return ref is not None and _SHA1.match(ref) is not None


def check_ref(ref: str) -> str:
    """A branch, tag or full commit id, by the rules of ``git check-ref-format``.

    Refused: empty or longer than 255 characters, a leading ``-`` (read by git as an
    option), control characters, space, ``~ ^ : ? * [ \\``, ``..``, ``@{``, the single
    ``@``, a leading or trailing ``/``, ``//``, a trailing ``.``, and a component that
    starts with ``.`` or ends with ``.lock``.
    """
    problem = _ref_problem(ref)
    if problem is not None:
        raise InvalidInputError(f"git ref {ref!r}: {problem}")
    return ref


_REF_RULES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda r: not r or len(r) > MAX_REF_CHARS, f"use 1-{MAX_REF_CHARS} characters"),
    (lambda r: r.startswith("-"), "must not start with '-'"),
    (
        lambda r: _REF_FORBIDDEN.search(r) is not None,
        "must not hold spaces, control characters or any of ~ ^ : ? * [ \\",
    ),
    (lambda r: ".." in r or "@{" in r or r == "@", "must not hold '..' or '@{' or be '@'"),
    (
        lambda r: r.startswith("/") or r.endswith(("/", ".")) or "//" in r,
        "must not start or end with '/', hold '//' or end with '.'",
    ),
    (
        lambda r: any(p.startswith(".") or p.endswith(".lock") for p in r.split("/")),
        "no component may start with '.' or end with '.lock'",
    ),
)


def _ref_problem(ref: str) -> str | None:
    return next((message for broken, message in _REF_RULES if broken(ref)), None)


def parse_source(text: str, ref: str | None = None, *, allow_file_urls: bool = False) -> JobSource:
    """The :class:`JobSource` that ``text`` names; InvalidInputError naming it if refused.

    ``https://`` / ``ssh://`` / ``user@host:path`` -> GIT (at ``ref``, a branch, tag or
    40-hex commit; the remote's default branch when None). A path ending ``.tar.gz`` or
    ``.tgz`` that is not a directory -> ARCHIVE (a missing one too, so that the fetcher
    can say the archive is missing). Anything else -> PATH, kept as written. A ref is
    refused for archives (their content is what is in them); a folder takes one only if
    it is a bare git repository (:func:`pipeline.sources.policy.check_folder_ref`).
    ``allow_file_urls`` accepts ``file://`` URLs as GIT sources (tests clone a local repo).
    """
    location = text.strip()
    if not location:
        raise InvalidInputError(f"source is empty: use {ALLOWED_DESCRIPTION}")
    kind = source_kind(location, allow_file_urls=allow_file_urls)
    if ref is not None:
        check_ref(ref)
        if kind is SourceKind.ARCHIVE:
            # Nothing to fetch at a ref: it names only the ref the job publishes to
            # (pipeline/refs.py), which the request carries.
            return JobSource(kind, location)
        # A folder takes a ref only if it is a bare repository: the policy checks that
        # where the folder is seen (the API's host, else the ingest worker's).
    return JobSource(kind, location, ref)


REF_APPLIES = "a ref applies to git URLs and bare git repositories only"


def source_kind(location: str, *, allow_file_urls: bool = False) -> SourceKind:
    """The kind of an already stripped source string, after the safety checks."""
    shown = redact_url(location)
    if location.startswith("-"):
        raise InvalidInputError(f"source {shown!r} must not start with '-'")
    if _CONTROL.search(location):
        raise InvalidInputError(f"source {shown!r} holds control characters")
    if _TRANSPORT.match(location):
        raise InvalidInputError(
            f"source {shown!r} uses git's '<transport>::' syntax, which is refused; "
            f"use {ALLOWED_DESCRIPTION}"
        )
    if _SCHEME.match(location):
        check_git_url(location, allow_file_urls=allow_file_urls)
        return SourceKind.GIT
    if _SCP.match(location):
        check_git_url(location)
        return SourceKind.GIT
    if location.lower().endswith(ARCHIVE_SUFFIXES) and not _is_directory(location):
        return SourceKind.ARCHIVE
    return SourceKind.PATH


def check_git_url(url: str, *, allow_file_urls: bool = False) -> str:
    """``url`` if git may fetch it: https, ssh or scp-like (``file`` only when allowed)."""
    shown = redact_url(url)
    if url.startswith("-") or _CONTROL.search(url) or _TRANSPORT.match(url):
        raise InvalidInputError(f"git URL {shown!r} is refused: use {ALLOWED_DESCRIPTION}")
    if any(ch.isspace() for ch in url):
        raise InvalidInputError(f"git URL {shown!r} holds whitespace: a URL spells a space %20")
    scheme_match = _SCHEME.match(url)
    if scheme_match is None:
        scp = _SCP.match(url)
        if scp is None:
            raise InvalidInputError(f"git URL {shown!r} is not a URL: use {ALLOWED_DESCRIPTION}")
        if scp.group("path").startswith("-"):
            raise InvalidInputError(f"git URL {shown!r}: the path must not start with '-'")
        _check_not_a_broken_scheme(url, scp, shown)
        return url
    scheme = scheme_match.group(1).lower()
    if scheme == "file" and allow_file_urls:
        if not url[len("file://") :].startswith("/"):
            raise InvalidInputError(f"git URL {shown!r}: a file URL needs an absolute path")
        return url
    if scheme not in ALLOWED_SCHEMES:
        raise InvalidInputError(
            f"git URL {shown!r}: scheme {scheme!r} is refused; use {ALLOWED_DESCRIPTION}"
        )
    _check_authority(url, shown)
    return url


def _check_not_a_broken_scheme(url: str, scp: re.Match[str], shown: str) -> None:
    """Refuse ``htps:/host/repo`` and its kin: read as scp-like syntax (host ``htps``),
    it is a URL whose scheme lost a letter or a slash, which git would try to reach over
    ssh at a host of that name."""
    host, path = scp.group("host"), scp.group("path")
    if scp.group("user") or not path.startswith("/") or "." in host:
        return
    near = difflib.get_close_matches(host.lower(), ("https", "http", "ssh", "git", "file"), 1, 0.7)
    if near:
        raise InvalidInputError(
            f"git URL {shown!r} is malformed: {host + ':'!r} looks like the scheme"
            f" {near[0] + '://'!r} missing a letter or a slash"
        )


def _check_authority(url: str, shown: str) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInputError(f"git URL {shown!r} is malformed: {exc}") from exc
    host = parts.netloc.rsplit("@", 1)[-1]
    if port is not None:
        host = host.rsplit(":", 1)[0]
    if not host or not _HOST.match(host):
        raise InvalidInputError(f"git URL {shown!r} has no valid host")
    if parts.password is not None or (parts.scheme.lower() == "https" and parts.username):
        # The source is stored with the job and shown in its status: no secrets in it.
        raise InvalidInputError(
            f"git URL {shown!r} holds credentials; store them with `quarry credentials add`"
            " (POST /v1/credentials) instead"
        )
    if parts.username is not None and parts.username.startswith("-"):
        raise InvalidInputError(f"git URL {shown!r}: the user must not start with '-'")
    if parts.path.strip("/") == "":
        raise InvalidInputError(f"git URL {shown!r} names no repository path")


def repo_name_from(source: JobSource) -> str:
    """The default repository name: a git URL's whole path (``org/name``,
    ``group/sub/project``) and a folder's or an archive's last component, without
    ``.git``/``.tar.gz``; a ``file://`` URL (tests' local clones) is named like a folder.

    Characters a repository name cannot hold become ``-``; a path too long keeps its last
    segments. InvalidInputError when nothing usable is left (the client must then name
    the repository).
    """
    location = source.location.rstrip("/")
    whole_path = False
    if source.kind is SourceKind.GIT:
        scheme = _SCHEME.match(location)
        scp = None if scheme else _SCP.match(location)
        path = scp.group("path") if scp else urlsplit(location).path
        whole_path = scp is not None or (scheme is not None and scheme.group(1).lower() != "file")
    else:
        path = location
    segments = [seg for seg in PurePosixPath(path.rstrip("/")).parts if seg not in ("/", ".")]
    if not whole_path:
        segments = segments[-1:]
    if not segments and source.kind is SourceKind.PATH:
        segments = [Path(path or ".").absolute().name]
    if segments:
        segments[-1] = _without_suffix(segments[-1])
    cleaned = [_NAME_UNSAFE.sub("-", seg).lstrip("._-").rstrip(".") for seg in segments]
    cleaned = [seg for seg in cleaned if seg]
    while len("/".join(cleaned)) > 200 and len(cleaned) > 1:
        cleaned = cleaned[1:]
    name = "/".join(cleaned)[-200:].lstrip("._-/")
    if not name:
        raise InvalidInputError(
            f"cannot derive a repository name from {redact_url(source.location)!r}: name it"
        )
    return check_repo_name(name)


def _without_suffix(name: str) -> str:
    for suffix in (".git", *ARCHIVE_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _is_directory(location: str) -> bool:
    return Path(location).is_dir()
