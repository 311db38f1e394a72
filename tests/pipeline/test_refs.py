"""Ref names and commit prefixes (pipeline/refs.py): pure."""

from __future__ import annotations

import pytest

from pipeline.errors import InvalidInputError
from pipeline.refs import check_commit_prefix, index_ref_name


@pytest.mark.parametrize(
    ("git_ref", "ref"),
    [
        (None, None),
        ("main", "main"),
        ("refs/heads/main", "main"),
        ("refs/heads/feature/x", "feature/x"),
        ("refs/tags/v1.2.3", "v1.2.3"),
        ("refs/pull/7/head", "pull/7/head"),
        ("refs/merge-requests/3/head", "merge-requests/3/head"),
        ("0123456789abcdef0123456789abcdef01234567", None),  # a commit names no ref
        ("release/2.x", "release/2.x"),
    ],
)
def test_the_ref_a_job_publishes_to_is_named_from_what_it_fetches(
    git_ref: str | None, ref: str | None
) -> None:
    assert index_ref_name(git_ref) == ref


@pytest.mark.parametrize("bad", ["refs/heads/", "a..b", "-x", "a b", "refs/heads/a..b", ""])
def test_a_bad_ref_is_refused_naming_it(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="ref"):
        index_ref_name(bad)


def test_commit_prefixes_are_hex_of_a_usable_length() -> None:
    assert check_commit_prefix("ABCDEF1") == "abcdef1"
    assert check_commit_prefix("a" * 40) == "a" * 40
    assert check_commit_prefix("tree-0123abcd") == "tree-0123abcd"  # a folder's digest
    for bad in ("abc", "g" * 10, "a" * 41, "a%", "a_bcdefgh", "tree-", "tree-abc", "tree-%"):
        with pytest.raises(InvalidInputError, match="commit"):
            check_commit_prefix(bad)
