"""Credentials without a server: the cipher and its keys, what a client may send, scopes,
the vault over the in-memory store, redaction, and what the fetcher hands to git."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from pipeline.adapters.fakes.credential_store import InMemoryCredentialStore
from pipeline.adapters.sources.git_auth import AUTH_FOLDER, git_auth
from pipeline.credentials.cipher import (
    CredentialCipher,
    CredentialDecryptionError,
    Sealed,
    new_credentials_key,
)
from pipeline.credentials.material import (
    CredentialKind,
    GitCredential,
    check_known_hosts,
    check_name,
    check_private_key,
    check_token,
)
from pipeline.credentials.redaction import redact, secret_fragments
from pipeline.credentials.scopes import best_scope, parse_scope
from pipeline.credentials.vault import CredentialVault
from pipeline.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError

TOKEN = "ghp_" + "Zq9" * 12


def private_key_text(kind: str = "ed25519") -> str:
    key = (
        ed25519.Ed25519PrivateKey.generate()
        if kind == "ed25519"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    fmt = (
        serialization.PrivateFormat.OpenSSH
        if kind == "ed25519"
        else serialization.PrivateFormat.PKCS8
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def host_key_line(host: str) -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    blob = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{host} {blob.decode()}"


# --- cipher ------------------------------------------------------------------------------


def test_sealed_text_opens_with_its_key_and_context_only() -> None:
    cipher = CredentialCipher(new_credentials_key())
    sealed = cipher.seal(b"s3cret", b"tenant-a")
    assert b"s3cret" not in sealed.ciphertext
    assert cipher.open(sealed, b"tenant-a", what="c") == b"s3cret"
    with pytest.raises(CredentialDecryptionError, match="altered"):
        cipher.open(sealed, b"tenant-b", what="c")
    other = CredentialCipher(new_credentials_key())
    with pytest.raises(CredentialDecryptionError, match="not configured") as caught:
        other.open(sealed, b"tenant-a", what="credential 'x'")
    assert sealed.key_id in str(caught.value) and "QUARRY_CREDENTIALS_KEY" in str(caught.value)


def test_a_retired_key_still_opens_what_it_sealed_and_new_seals_use_the_current_key() -> None:
    old_key, new_key = new_credentials_key(), new_credentials_key()
    sealed = CredentialCipher(old_key).seal(b"tok", b"ctx")
    rotated = CredentialCipher(new_key, previous=old_key)
    assert rotated.open(sealed, b"ctx", what="c") == b"tok"
    assert rotated.needs_rekey(sealed)
    assert rotated.seal(b"tok", b"ctx").key_id == rotated.current_key_id != sealed.key_id


@pytest.mark.parametrize("bad", ["", "short", base64.urlsafe_b64encode(b"x" * 31).decode(), "é"])
def test_a_malformed_key_is_a_config_error_naming_the_setting(bad: str) -> None:
    with pytest.raises(ConfigError, match="QUARRY_CREDENTIALS_KEY"):
        CredentialCipher(bad)


def test_a_tampered_ciphertext_does_not_open() -> None:
    cipher = CredentialCipher(new_credentials_key())
    sealed = cipher.seal(b"tok", b"ctx")
    flipped = bytes([sealed.ciphertext[-1] ^ 1])
    with pytest.raises(CredentialDecryptionError):
        cipher.open(Sealed(sealed.key_id, sealed.ciphertext[:-1] + flipped), b"ctx", what="c")


# --- what a client sends -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "empty"),
        ("abc\ndef", "newlines"),
        ("abc def", "newlines"),
        ("abc\x00", "control"),
        ("x" * 5000, "longer"),
    ],
)
def test_bad_tokens_are_refused_naming_the_field_not_the_token(bad: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as caught:
        check_token(bad)
    assert str(caught.value).startswith("token:")
    assert bad.strip() == "" or bad not in str(caught.value)


@pytest.mark.parametrize("bad", ["", "UPPER", "-lead", "a" * 64, "with space", "a/b"])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError, match=r"^name:"):
        check_name(bad)


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_private_keys_are_kept_in_openssh_format_with_their_fingerprint(kind: str) -> None:
    text, fingerprint = check_private_key(private_key_text(kind))
    assert text.startswith("-----BEGIN OPENSSH PRIVATE KEY-----") and text.endswith("\n")
    assert fingerprint.startswith("SHA256:") and len(fingerprint) == 7 + 43


def test_garbage_and_encrypted_keys_are_refused_without_echoing_them() -> None:
    with pytest.raises(InvalidInputError, match=r"^private_key: not an SSH private key") as caught:
        check_private_key("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAnotakey\n-----END")
    assert "AAAAnotakey" not in str(caught.value)
    key = ed25519.Ed25519PrivateKey.generate()
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass"),
    ).decode()
    with pytest.raises(InvalidInputError, match="passphrase"):
        check_private_key(encrypted)


def test_known_hosts_must_pin_the_scopes_host_and_port() -> None:
    address = parse_scope("ssh://git@127.0.0.1:2222/srv")
    line = host_key_line("[127.0.0.1]:2222")
    pinned, fingerprint = check_known_hosts(line + " comment", address)
    assert pinned == line + "\n" and fingerprint.startswith("SHA256:")
    for wrong in (host_key_line("127.0.0.1"), host_key_line("[127.0.0.2]:2222")):
        with pytest.raises(InvalidInputError, match=r"^known_hosts: the line is for"):
            check_known_hosts(wrong, address)
    for refused, message in [
        ("", "required"),
        (host_key_line("*"), "wildcards"),
        ("@cert-authority " + host_key_line("[127.0.0.1]:2222"), "@cert-authority"),
        ("[127.0.0.1]:2222 ssh-ed25519 AAAAbroken", "does not parse"),
        ("[127.0.0.1]:2222", "<host> <key type>"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            check_known_hosts(refused, address)


def test_a_hashed_known_hosts_name_is_checked_against_the_host() -> None:
    address = parse_scope("ssh://git@git.example.com/acme")
    salt = os.urandom(20)
    digest = hmac.new(salt, b"git.example.com", hashlib.sha1).digest()
    hashed = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
    _, key_type, blob = host_key_line("x").split()
    pinned, _ = check_known_hosts(f"{hashed} {key_type} {blob}", address)
    assert pinned == f"git.example.com {key_type} {blob}\n"
    with pytest.raises(InvalidInputError, match="not for"):
        check_known_hosts(
            f"{hashed} {key_type} {blob}", parse_scope("ssh://git@other.example.com/")
        )


# --- scopes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://git.example.com/acme/api.git", "https://git.example.com/acme"),
        ("https://GIT.example.com:443/acme/api", "https://git.example.com/acme"),
        ("https://git.example.com/acme/secret/x.git", "https://git.example.com/acme/secret"),
        ("https://git.example.com/acme-evil/x.git", "https://git.example.com"),
        ("https://git.example.com.evil.org/acme/x.git", None),
        ("https://git.example.com:8443/acme/x.git", None),
        ("ssh://git@git.example.com/acme/x.git", "ssh://git@git.example.com/acme"),
        ("git@git.example.com:acme/x.git", "ssh://git@git.example.com/acme"),
        ("ssh://other@git.example.com/acme/x.git", None),
        ("file:///tmp/acme/x.git", None),
    ],
)
def test_the_narrowest_covering_scope_wins(url: str, expected: str | None) -> None:
    scopes = [
        parse_scope(s).text()
        for s in (
            "https://git.example.com",
            "https://git.example.com/acme/",
            "https://git.example.com/acme/secret",
            "git@git.example.com:acme",
        )
    ]
    assert best_scope(url, scopes) == expected


@pytest.mark.parametrize(
    "bad",
    ["http://h/x", "https://user:pw@h/x", "https://tok@h/x", "ftp://h", "https://h/a/../b", "h x"],
)
def test_bad_scopes_are_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(InvalidInputError, match=r"^scope:"):
        parse_scope(bad)


# --- the vault over the fake ----------------------------------------------------------------


def vault() -> CredentialVault:
    return CredentialVault(InMemoryCredentialStore(), CredentialCipher(new_credentials_key()))


def test_the_vault_stores_ciphertext_and_opens_it_for_covered_urls_of_its_tenant() -> None:
    v = vault()
    record = v.add(
        "tenant-a",
        name="gh",
        kind=CredentialKind.HTTPS_TOKEN,
        scope="https://git.example.com/acme",
        secret=TOKEN,
    )
    assert TOKEN.encode() not in record.ciphertext and TOKEN not in repr(record)
    assert TOKEN not in str(record.public())
    found = v.for_url("tenant-a", "https://git.example.com/acme/api.git")
    assert found is not None and found.secret == TOKEN and found.username == "x-access-token"
    assert TOKEN not in repr(found)
    assert v.for_url("tenant-b", "https://git.example.com/acme/api.git") is None
    assert v.for_url("tenant-a", "https://elsewhere.example.com/acme/api.git") is None


def test_names_and_scopes_are_unique_per_tenant_not_across_tenants() -> None:
    v = vault()
    args = {"kind": CredentialKind.HTTPS_TOKEN, "scope": "https://h.example/acme", "secret": TOKEN}
    v.add("tenant-a", name="gh", **args)  # type: ignore[arg-type]
    v.add("tenant-b", name="gh", **args)  # type: ignore[arg-type]
    with pytest.raises(ConflictError):
        v.add("tenant-a", name="gh", **args | {"scope": "https://h.example/other"})  # type: ignore[arg-type]
    with pytest.raises(ConflictError):
        v.add("tenant-a", name="gh2", **args)  # type: ignore[arg-type]


def test_rotation_replaces_the_secret_and_another_tenant_cannot_rotate_or_remove() -> None:
    v = vault()
    v.add(
        "a", name="gh", kind=CredentialKind.HTTPS_TOKEN, scope="https://h.example/x", secret=TOKEN
    )
    with pytest.raises(NotFoundError, match="not found"):
        v.rotate("b", "gh", secret="stolen")
    with pytest.raises(NotFoundError, match="not found"):
        v.remove("b", "gh")
    v.rotate("a", "gh", secret="new-token-1234")
    found = v.for_url("a", "https://h.example/x/r.git")
    assert found is not None and found.secret == "new-token-1234"
    v.remove("a", "gh")
    assert v.list("a") == []


def test_a_key_needs_an_ssh_scope_and_a_pin() -> None:
    v = vault()
    with pytest.raises(InvalidInputError, match=r"^scope: a ssh_key credential needs a ssh scope"):
        v.add("a", name="k", kind=CredentialKind.SSH_KEY, scope="https://h/x", secret="k")
    with pytest.raises(InvalidInputError, match=r"^known_hosts: required"):
        v.add(
            "a",
            name="k",
            kind=CredentialKind.SSH_KEY,
            scope="ssh://git@h.example/x",
            secret=private_key_text(),
        )


# --- redaction and what git gets ---------------------------------------------------------------


def test_redaction_removes_every_form_of_the_token_and_every_key_line() -> None:
    token = GitCredential("gh", CredentialKind.HTTPS_TOKEN, "https://h", "bot", TOKEN)
    basic = base64.b64encode(f"bot:{TOKEN}".encode()).decode()
    text = f"fatal: {TOKEN} / Authorization: Basic {basic} / {TOKEN[:3]}"
    assert (
        redact(text, secret_fragments(token))
        == f"fatal: *** / Authorization: Basic *** / {TOKEN[:3]}"
    )
    key_text, _ = check_private_key(private_key_text())
    key = GitCredential("k", CredentialKind.SSH_KEY, "ssh://h", None, key_text, "h x y")
    body = key_text.splitlines()[1]
    assert body not in redact(f"oops {body}", secret_fragments(key))


def test_git_gets_paths_never_the_secret_and_the_files_go_when_the_clone_ends(
    tmp_path: Path,
) -> None:
    token = GitCredential("gh", CredentialKind.HTTPS_TOKEN, "https://h.example", "bot", TOKEN)
    with git_auth(token, "https://h.example:8443/acme/r.git", tmp_path) as auth:
        folder = tmp_path / AUTH_FOLDER
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        store = folder / "credentials"
        assert stat.S_IMODE(store.stat().st_mode) == 0o600
        assert store.read_text() == f"https://bot:{TOKEN}@h.example:8443\n"
        assert TOKEN not in " ".join(auth.config) and TOKEN not in str(auth.env)
        assert "http.followRedirects=false" in auth.config
    assert not folder.exists()
    key_text, _ = check_private_key(private_key_text())
    pin = host_key_line("[h.example]:2222")
    key = GitCredential(
        "k", CredentialKind.SSH_KEY, "ssh://git@h.example:2222", None, key_text, pin
    )
    with (
        pytest.raises(RuntimeError),
        git_auth(key, "ssh://git@h.example:2222/r.git", tmp_path) as auth,
    ):
        command = auth.env["GIT_SSH_COMMAND"]
        assert "StrictHostKeyChecking=yes" in command and "IdentitiesOnly=yes" in command
        assert key_text.splitlines()[1] not in command
        assert (folder / "known_hosts").read_text() == pin
        assert stat.S_IMODE((folder / "deploy_key").stat().st_mode) == 0o600
        raise RuntimeError("the clone failed")
    assert not folder.exists()


def test_rekey_reseals_what_a_retired_key_sealed_and_then_the_old_key_can_go() -> None:
    store = InMemoryCredentialStore()
    old_key, new_key = new_credentials_key(), new_credentials_key()
    old = CredentialVault(store, CredentialCipher(old_key))
    for tenant in ("a", "b"):
        old.add(
            tenant, name="gh", kind=CredentialKind.HTTPS_TOKEN, scope="https://h/x", secret=TOKEN
        )
    rotated = CredentialVault(store, CredentialCipher(new_key, previous=old_key))
    assert rotated.rekey(batch=1) == 2
    assert rotated.rekey() == 0
    only_new = CredentialVault(store, CredentialCipher(new_key))
    for tenant in ("a", "b"):
        found = only_new.for_url(tenant, "https://h/x/r.git")
        assert found is not None and found.secret == TOKEN


def test_rekey_without_the_retired_key_names_the_missing_key() -> None:
    store = InMemoryCredentialStore()
    CredentialVault(store, CredentialCipher(new_credentials_key())).add(
        "a", name="gh", kind=CredentialKind.HTTPS_TOKEN, scope="https://h/x", secret=TOKEN
    )
    with pytest.raises(CredentialDecryptionError, match="not configured"):
        CredentialVault(store, CredentialCipher(new_credentials_key())).rekey()
