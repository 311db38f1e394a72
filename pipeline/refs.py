"""Refs: the branches, tags and pull requests of a repository, each with a searchable
snapshot of its own.

A job publishes to one ref (``Job.ref_name``). The name comes from the git ref the job
fetches (``refs/heads/feature/x`` -> ``feature/x``, ``refs/tags/v1`` -> ``v1``,
``refs/pull/7/head`` -> ``pull/7/head``), or the repository's default ref when the
request names none or names a bare commit id. A repository's default ref is fixed when
the repository is created (the request's ``default_ref``, else its ref, else
:data:`DEFAULT_REF`); search, the graph and listings read it when no ref is asked for.

Content is shared, never copied: snapshots are keyed by (repository, commit) and chunk
rows by file version, so a ref that differs from its base in three files costs three
files of chunking and embedding (its job diffs against its own snapshot, or the default
ref's when it has none yet). The code graph follows the default ref only (a graph per
ref would copy every unchanged file's nodes); the graph endpoints, asked for another
ref, answer from the default ref's graph and name the files where the two differ.

Order: a job publishes only if no job created after it has already published the ref
(``jobs.seq``), so two jobs that finish out of order never leave the older commit
searchable; a job that loses ends ``done`` with ``published: false`` and says which commit
the ref holds.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pipeline.errors import InvalidInputError
from pipeline.sources.locations import check_ref, is_commit_sha

DEFAULT_REF: Final = "main"
_STRIPPED_PREFIXES: Final = ("refs/heads/", "refs/tags/", "refs/")
_ABBREVIATED_SHA_CHARS: Final = range(7, 40)
_TREE_PREFIX: Final = "tree-"  # pipeline.analysis.inventory.tree_digest


@dataclass(frozen=True, slots=True)
class RefState:
    """One ref of a repository as listed: the commit it holds, the job that published
    it, when, and whether it is the repository's default ref."""

    name: str
    commit: str
    snapshot_id: int
    job_seq: int
    published_at: float
    default: bool
    files: int = 0


def index_ref_name(git_ref: str | None) -> str | None:
    """The ref a job fetching ``git_ref`` publishes to; None: the repository's default
    ref (no ref given, or a full commit id, which names no ref)."""
    if git_ref is None or is_commit_sha(git_ref):
        return None
    for prefix in _STRIPPED_PREFIXES:
        if git_ref.startswith(prefix) and len(git_ref) > len(prefix):
            return check_ref_name(git_ref[len(prefix) :])
    return check_ref_name(git_ref)


def check_ref_name(name: str) -> str:
    """A ref name as stored (a git ref name, by ``git check-ref-format``'s rules); a
    clear error names a bad one."""
    try:
        return check_ref(name)
    except InvalidInputError as exc:
        raise InvalidInputError(str(exc).replace("git ref", "ref", 1)) from None


def check_commit_prefix(commit: str) -> str:
    """A commit asked for by ``as of``: 7 to 40 hex digits (any case) of a git commit, or
    ``tree-`` and 4 to 16 hex digits of a folder's or archive's tree digest."""
    lowered = commit.lower()
    digits = lowered.removeprefix(_TREE_PREFIX)
    hexdigits = bool(digits) and all(c in "0123456789abcdef" for c in digits)
    if lowered.startswith(_TREE_PREFIX):
        usable = hexdigits and 4 <= len(digits) <= 16
    else:
        usable = hexdigits and (len(digits) in _ABBREVIATED_SHA_CHARS or len(digits) == 40)
    if usable:
        return lowered
    raise InvalidInputError(
        f"commit {commit!r}: give 7 to 40 hex digits of a commit, or tree- and 4 to 16 hex"
        " digits of a folder's or archive's tree digest"
    )
