"""What a verified GitHub or GitLab delivery asks for: index a branch or tag at a
commit, delete it, or nothing (an event or ref that push hooks do not handle).

Only the ref, the commit and the repository's identity are read from a payload. The
repository it names must be the hook's (:func:`pipeline.push_hooks.hooks.repo_key` of
its URLs against the registered clone URL): a hook's secret reused on another
repository, or a payload crafted by someone holding it, indexes nothing. Index ref names
are the git ref without ``refs/heads/`` or ``refs/tags/``; other refs (pull and merge
request refs, notes) are ignored.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from pipeline.errors import InvalidInputError, PermanentError
from pipeline.push_hooks.hooks import Platform, PushHook, repo_key
from pipeline.sources.locations import check_ref

ZERO_COMMIT: Final = "0" * 40
GITHUB_EVENT_HEADER: Final = "X-GitHub-Event"
GITLAB_EVENT_HEADER: Final = "X-Gitlab-Event"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_BRANCH_PREFIX, _TAG_PREFIX = "refs/heads/", "refs/tags/"
# The payload's URLs of its repository, any of which may name the registered one.
_GITHUB_URLS = (("repository", "clone_url"), ("repository", "ssh_url"), ("repository", "html_url"))
_GITLAB_URLS = (
    ("project", "git_http_url"),
    ("project", "git_ssh_url"),
    ("project", "web_url"),
    ("repository", "git_http_url"),
    ("repository", "git_ssh_url"),
)


class PayloadError(InvalidInputError):
    """The body is not a payload of the event its headers name (answered 400)."""


class ForeignRepositoryError(PermanentError):
    """A verified payload names a repository other than the hook's (answered 403)."""


class EventKind(enum.StrEnum):
    PUSH = "push"
    PING = "ping"  # GitHub's check of a new hook: answered 200, nothing enqueued
    OTHER = "other"


def event_kind(platform: Platform, name: str | None) -> EventKind:
    """The kind of the event named by the platform's event header."""
    if platform is Platform.GITHUB:
        return {"push": EventKind.PUSH, "ping": EventKind.PING}.get(name or "", EventKind.OTHER)
    return EventKind.PUSH if name in ("Push Hook", "Tag Push Hook") else EventKind.OTHER


class PushAction(enum.StrEnum):
    INDEX = "index"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class PushEvent:
    """Index ``ref`` (``refs/heads/feature/x``) at ``commit`` as index ref ``ref_name``
    (``feature/x``), or delete ``ref_name`` (``commit`` None)."""

    action: PushAction
    ref: str
    ref_name: str
    commit: str | None
    # The platform's default branch (GitHub repository.default_branch, GitLab
    # project.default_branch): the default ref of a repository the push creates.
    default_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A verified delivery that asks for nothing push hooks do; why."""

    reason: str


def payload_of(body: bytes) -> dict[str, Any]:
    """The JSON object of a body; PayloadError naming what is wrong."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise PayloadError(
            "body: not JSON (set the hook's content type to application/json)"
        ) from None
    if not isinstance(payload, dict):
        raise PayloadError("body: a push payload is a JSON object")
    return payload


def push_event(hook: PushHook, payload: dict[str, Any]) -> PushEvent | Ignored:
    """What a push (or tag push) payload of ``hook``'s platform asks for.

    ForeignRepositoryError when it names another repository than the hook's;
    PayloadError for a payload without a ref, or with a ref or commit malformed."""
    _check_repository(hook, payload)
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref:
        raise PayloadError("ref: missing from the payload")
    name = _ref_name(ref)
    if name is None:
        return Ignored(f"ref {ref[:200]!r} is not a branch or a tag")
    try:
        check_ref(name)
    except InvalidInputError as exc:
        raise PayloadError(f"ref: {exc}") from None
    after = payload.get("after")
    deleted = payload.get("deleted") is True or after == ZERO_COMMIT
    if deleted:
        return PushEvent(PushAction.DELETE, ref, name, None)
    commit = _commit(hook.platform, payload)
    return PushEvent(PushAction.INDEX, ref, name, commit, _default_branch(hook.platform, payload))


def _default_branch(platform: Platform, payload: dict[str, Any]) -> str | None:
    """The repository's default branch as the payload names it; None when absent or not
    a valid ref name (the repository then takes its first job's ref)."""
    outer = "repository" if platform is Platform.GITHUB else "project"
    found = _at(payload, (outer, "default_branch"))
    if not isinstance(found, str):
        return None
    try:
        return check_ref(found)
    except InvalidInputError:
        return None


def _ref_name(ref: str) -> str | None:
    for prefix in (_BRANCH_PREFIX, _TAG_PREFIX):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return None


def _commit(platform: Platform, payload: dict[str, Any]) -> str:
    """The commit the ref points at. An annotated tag's ``after`` is the tag object, not
    a commit: GitHub's ``head_commit.id`` and GitLab's ``checkout_sha`` are the commit
    (for a branch they are ``after``)."""
    if platform is Platform.GITHUB:
        head = payload.get("head_commit")
        peeled = head.get("id") if isinstance(head, dict) else None
    else:
        peeled = payload.get("checkout_sha")
    for candidate in (peeled, payload.get("after")):
        if isinstance(candidate, str) and _COMMIT.match(candidate):
            return candidate
    raise PayloadError("after: not a 40-hex commit id")


def _check_repository(hook: PushHook, payload: dict[str, Any]) -> None:
    paths = _GITHUB_URLS if hook.platform is Platform.GITHUB else _GITLAB_URLS
    named = [_at(payload, path) for path in paths]
    keys = {repo_key(url) for url in named if isinstance(url, str)} - {None}
    if not keys:
        raise PayloadError("repository: the payload names no repository URL")
    if repo_key(hook.clone_url) not in keys:
        shown = next(u for u in named if isinstance(u, str))
        raise ForeignRepositoryError(
            f"repository: the payload is of {shown[:200]!r}, not of this hook's repository"
        )


def _at(payload: dict[str, Any], path: tuple[str, str]) -> object:
    outer = payload.get(path[0])
    return outer.get(path[1]) if isinstance(outer, dict) else None
