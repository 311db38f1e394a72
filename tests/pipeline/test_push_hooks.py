"""Push hooks without I/O: secrets, GitHub's signature (its documented vector), GitLab's
token, the repository identity of a URL, and what a payload asks for."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.errors import ConfigError, InvalidInputError
from pipeline.push_hooks.events import (
    EventKind,
    ForeignRepositoryError,
    Ignored,
    PayloadError,
    PushAction,
    PushEvent,
    event_kind,
    payload_of,
    push_event,
)
from pipeline.push_hooks.hooks import (
    SECRET_PREFIX,
    Platform,
    PushHook,
    check_platform,
    github_signature,
    github_signed,
    gitlab_token_matches,
    hook_secret,
    is_hook_id,
    new_hook_id,
    repo_key,
)

MASTER = b"master-secret-for-tests"
SHA = "1f2e3d4c5b6a79880716253443526170f1e2d3c4"
OTHER_SHA = "a" * 40
GITHUB = PushHook(
    "ph_" + "1" * 32, "acme", "acme/widgets", Platform.GITHUB,
    "https://github.com/acme/widgets.git", None, 0.0,
)  # fmt: skip
GITLAB = PushHook(
    "ph_" + "2" * 32, "acme", "group/sub/widgets", Platform.GITLAB,
    "https://gitlab.example.com/group/sub/widgets.git", None, 0.0,
)  # fmt: skip


def test_githubs_documented_signature_vector_verifies() -> None:
    # docs.github.com, "Validating webhook deliveries": secret, payload and signature.
    secret, body = "It's a Secret to Everybody", b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature(secret, body) == expected
    assert github_signed(secret, body, expected)
    assert github_signed(secret, body, expected.upper().replace("SHA256=", "sha256="))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",  # no sha256=
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=" + "0" * 64,
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",  # short
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17é",
    ],
)
def test_a_missing_or_wrong_github_signature_does_not_verify(header: str | None) -> None:
    assert not github_signed("It's a Secret to Everybody", b"Hello, World!", header)


def test_a_signature_of_another_body_or_under_another_secret_does_not_verify() -> None:
    secret = "It's a Secret to Everybody"
    assert not github_signed(secret, b"Hello, World?", github_signature(secret, b"Hello, World!"))
    assert not github_signed(secret, b"x", github_signature("another", b"x"))


def test_gitlab_token_must_be_the_hooks_secret() -> None:
    secret = hook_secret(MASTER, GITLAB)
    assert gitlab_token_matches(secret, secret)
    for wrong in (None, "", secret[:-1], secret + "x", hook_secret(MASTER, GITHUB), "ü"):
        assert not gitlab_token_matches(secret, wrong)


def test_hook_secrets_are_derived_per_hook_and_need_the_master() -> None:
    first = hook_secret(MASTER, GITHUB)
    assert first.startswith(SECRET_PREFIX) and first == hook_secret(MASTER, GITHUB)
    assert first != hook_secret(MASTER, GITLAB)
    assert first != hook_secret(b"another master", GITHUB)
    other_tenant = PushHook(GITHUB.hook_id, "evil", *_rest(GITHUB))
    assert first != hook_secret(MASTER, other_tenant)
    with pytest.raises(ConfigError, match="QUARRY_WEBHOOK_SECRET"):
        hook_secret(b"", GITHUB)


def _rest(hook: PushHook) -> tuple[Any, ...]:
    return (hook.repo, hook.platform, hook.clone_url, hook.credential, hook.created_at)


def test_hook_ids_are_random_and_checked() -> None:
    made = {new_hook_id() for _ in range(100)}
    assert len(made) == 100 and all(is_hook_id(h) for h in made)
    for bad in ("", "ph_", "ph_" + "g" * 32, "acme", "ph_" + "1" * 33, "../ph_" + "1" * 32):
        assert not is_hook_id(bad)


def test_an_unknown_platform_is_refused_naming_it() -> None:
    assert check_platform("gitlab") is Platform.GITLAB
    with pytest.raises(InvalidInputError, match="platform: 'bitbucket'"):
        check_platform("bitbucket")


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://github.com/acme/widgets.git", ("github.com", "acme/widgets")),
        ("https://GitHub.com/Acme/Widgets", ("github.com", "acme/widgets")),
        ("http://github.com/acme/widgets/", ("github.com", "acme/widgets")),
        ("ssh://git@github.com:22/acme/widgets.git", ("github.com", "acme/widgets")),
        ("git@github.com:acme/widgets.git", ("github.com", "acme/widgets")),
        ("https://user@gitlab.example.com:8443/g/s/p.git", ("gitlab.example.com", "g/s/p")),
        ("file:///srv/git/widgets.git", None),
        ("https://github.com/", None),
        ("not a url", None),
        ("", None),
    ],
)
def test_repo_key_is_host_and_project_path(url: str, key: tuple[str, str] | None) -> None:
    assert repo_key(url) == key


def test_event_kinds() -> None:
    assert event_kind(Platform.GITHUB, "push") is EventKind.PUSH
    assert event_kind(Platform.GITHUB, "ping") is EventKind.PING
    assert event_kind(Platform.GITHUB, "pull_request") is EventKind.OTHER
    assert event_kind(Platform.GITHUB, None) is EventKind.OTHER
    assert event_kind(Platform.GITLAB, "Push Hook") is EventKind.PUSH
    assert event_kind(Platform.GITLAB, "Tag Push Hook") is EventKind.PUSH
    assert event_kind(Platform.GITLAB, "Merge Request Hook") is EventKind.OTHER
    assert event_kind(Platform.GITLAB, "push") is EventKind.OTHER


def github_push(ref: str, after: str = SHA, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "ref": ref,
        "before": OTHER_SHA,
        "after": after,
        "deleted": after == "0" * 40,
        "head_commit": None if after == "0" * 40 else {"id": after},
        "repository": {
            "full_name": "acme/widgets",
            "clone_url": "https://github.com/acme/widgets.git",
            "ssh_url": "git@github.com:acme/widgets.git",
            "html_url": "https://github.com/acme/widgets",
        },
    }
    payload.update(extra)
    return payload


def gitlab_push(ref: str, after: str = SHA, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "object_kind": "push",
        "ref": ref,
        "before": OTHER_SHA,
        "after": after,
        "checkout_sha": None if after == "0" * 40 else after,
        "project": {
            "path_with_namespace": "group/sub/widgets",
            "git_http_url": "https://gitlab.example.com/group/sub/widgets.git",
            "git_ssh_url": "git@gitlab.example.com:group/sub/widgets.git",
        },
    }
    payload.update(extra)
    return payload


ZERO = "0" * 40
CASES: list[tuple[PushHook, dict[str, Any], PushEvent | Ignored]] = [
    (
        GITHUB,
        github_push("refs/heads/feature/x"),
        PushEvent(PushAction.INDEX, "refs/heads/feature/x", "feature/x", SHA),
    ),
    (GITHUB, github_push("refs/tags/v1"), PushEvent(PushAction.INDEX, "refs/tags/v1", "v1", SHA)),
    (
        GITHUB,  # an annotated tag: after is the tag object, head_commit the commit
        github_push("refs/tags/v2", after=OTHER_SHA, head_commit={"id": SHA}),
        PushEvent(PushAction.INDEX, "refs/tags/v2", "v2", SHA),
    ),
    (
        GITHUB,
        github_push("refs/heads/gone", after=ZERO),
        PushEvent(PushAction.DELETE, "refs/heads/gone", "gone", None),
    ),
    (
        GITHUB,  # deleted: true decides, whatever after says
        github_push("refs/heads/gone", deleted=True),
        PushEvent(PushAction.DELETE, "refs/heads/gone", "gone", None),
    ),
    (
        GITHUB,
        github_push("refs/pull/7/head"),
        Ignored("ref 'refs/pull/7/head' is not a branch or a tag"),
    ),
    (
        GITLAB,
        gitlab_push("refs/heads/main"),
        PushEvent(PushAction.INDEX, "refs/heads/main", "main", SHA),
    ),
    (
        GITLAB,  # a tag push: checkout_sha is the commit
        gitlab_push("refs/tags/v1", after=OTHER_SHA, checkout_sha=SHA),
        PushEvent(PushAction.INDEX, "refs/tags/v1", "v1", SHA),
    ),
    (
        GITLAB,
        gitlab_push("refs/heads/old", after=ZERO),
        PushEvent(PushAction.DELETE, "refs/heads/old", "old", None),
    ),
    (
        GITLAB,
        gitlab_push("refs/merge-requests/3/head"),
        Ignored("ref 'refs/merge-requests/3/head' is not a branch or a tag"),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("hook", "payload", "expected"), CASES)
def test_what_a_push_asks_for(
    hook: PushHook, payload: dict[str, Any], expected: PushEvent | Ignored
) -> None:
    assert push_event(hook, payload) == expected


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({**github_push("refs/heads/x"), "ref": None}, "ref: missing"),
        (github_push("refs/heads/a..b"), "ref:"),
        (github_push("refs/heads/-rf"), "ref:"),
        (github_push("refs/heads/x", after="HEAD", head_commit=None), "after:"),
        (github_push("refs/heads/x", after="--upload-pack=x", head_commit=None), "after:"),
        ({"ref": "refs/heads/x", "after": SHA}, "names no repository"),
        ({**github_push("refs/heads/x"), "repository": "acme/widgets"}, "names no repository"),
    ],
)
def test_a_malformed_payload_is_a_payload_error(payload: dict[str, Any], problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        push_event(GITHUB, payload)


@pytest.mark.parametrize(
    "repository",
    [
        {"clone_url": "https://github.com/evil/widgets.git"},
        {"clone_url": "https://github.example.com/acme/widgets.git"},  # same path, other host
        {"clone_url": "file:///srv/acme/widgets.git"},
        {"ssh_url": "git@github.com:acme/widgets-fork.git", "full_name": "acme/widgets"},
    ],
)
def test_a_payload_of_another_repository_is_refused(repository: dict[str, str]) -> None:
    payload = github_push("refs/heads/main", repository=repository)
    with pytest.raises((ForeignRepositoryError, PayloadError)):
        push_event(GITHUB, payload)


def test_a_gitlab_payload_of_another_project_is_refused() -> None:
    project = {"git_http_url": "https://gitlab.example.com/group/other.git"}
    with pytest.raises(ForeignRepositoryError, match="group/other"):
        push_event(GITLAB, gitlab_push("refs/heads/main", project=project))


@pytest.mark.parametrize("body", [b"", b"payload=%7B%7D", b"[1, 2]", b'"ref"', b"\xff\xfe", b"{"])
def test_a_body_that_is_no_json_object_is_a_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError, match="body:"):
        payload_of(body)


def test_a_json_object_is_read() -> None:
    assert payload_of(json.dumps(github_push("refs/heads/x")).encode())["after"] == SHA
