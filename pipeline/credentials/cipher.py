"""Encryption of credential material at rest: AES-256-GCM under a key from a secret.

A key is 32 random bytes written as URL-safe base64 (``QUARRY_CREDENTIALS_KEY``); its
id is the first 16 hex digits of its SHA-256, stored next to each ciphertext, so that
after a key rotation the retired keys (``QUARRY_CREDENTIALS_PREVIOUS_KEYS``) still
decrypt what they encrypted until it is re-encrypted. A ciphertext is bound to its
tenant, name and kind (GCM's associated data): a row copied onto another tenant's or
another name does not decrypt. Nothing here logs or returns a key or a plaintext in a
message.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipeline.errors import ConfigError, PermanentError

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_SETTING = "QUARRY_CREDENTIALS_KEY"
PREVIOUS_KEYS_SETTING = "QUARRY_CREDENTIALS_PREVIOUS_KEYS"


class CredentialDecryptionError(PermanentError):
    """A stored credential does not decrypt: its key is not configured, or it was altered."""


def new_credentials_key() -> str:
    """A fresh key, as the settings take it (URL-safe base64 of 32 random bytes)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def _decode_key(text: str, setting: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"{setting}: a credentials key is {KEY_BYTES} bytes in URL-safe base64 "
            "(`python -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32))"
            ".decode())'`)"
        )
    return key


@dataclass(frozen=True, slots=True)
class Sealed:
    """A ciphertext (nonce + AES-GCM output) and the id of the key that made it."""

    key_id: str
    ciphertext: bytes


class CredentialCipher:
    """Seals with the current key; opens with whichever configured key made the text."""

    def __init__(self, current: str, previous: str = "") -> None:
        key = _decode_key(current, KEY_SETTING)
        self._current = key_id(key)
        self._keys = {self._current: key}
        for text in (t for t in previous.split(",") if t.strip()):
            old = _decode_key(text, PREVIOUS_KEYS_SETTING)
            self._keys.setdefault(key_id(old), old)

    @property
    def current_key_id(self) -> str:
        return self._current

    def seal(self, plaintext: bytes, context: bytes) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self._keys[self._current]).encrypt(nonce, plaintext, context)
        return Sealed(self._current, nonce + sealed)

    def open(self, sealed: Sealed, context: bytes, *, what: str) -> bytes:
        """The plaintext; CredentialDecryptionError naming ``what`` and the key id."""
        key = self._keys.get(sealed.key_id)
        if key is None:
            raise CredentialDecryptionError(
                f"{what} was encrypted with key {sealed.key_id}, which is not configured"
                f" ({KEY_SETTING} or {PREVIOUS_KEYS_SETTING})"
            )
        nonce, body = sealed.ciphertext[:NONCE_BYTES], sealed.ciphertext[NONCE_BYTES:]
        try:
            return AESGCM(key).decrypt(nonce, body, context)
        except InvalidTag:
            raise CredentialDecryptionError(
                f"{what} does not decrypt with key {sealed.key_id}: the stored row was altered"
            ) from None

    def needs_rekey(self, sealed: Sealed) -> bool:
        return sealed.key_id != self._current
