"""The local stack's secrets file: a stack made before credentials existed gains a
credentials key on its next `dev up`, and keeps it on every later one (a new key would
leave the stored credentials unreadable); the secrets it had stay as they were."""

from __future__ import annotations

import json
from pathlib import Path

from config.endpoints import read_stack_secrets, secrets_path
from config.settings import load_settings
from devstack.stack import Stack
from pipeline.credentials.cipher import CredentialCipher


def test_an_older_secrets_file_gains_a_credentials_key_and_keeps_it(tmp_path: Path) -> None:
    settings = load_settings(env={"QUARRY_DATA_DIR": str(tmp_path)})
    path = secrets_path(settings)
    path.parent.mkdir(parents=True)
    older = {"graph_password": "g", "api_token": "t", "flower_password": "f", "webhook_secret": "w"}
    path.write_text(json.dumps(older))
    stack = Stack(settings)
    first = stack._ensure_secrets()  # what `dev up` does first
    assert (first.graph_password, first.api_token, first.webhook_secret) == ("g", "t", "w")
    CredentialCipher(first.credentials_key)  # a valid key
    assert stack._ensure_secrets().credentials_key == first.credentials_key
    again = read_stack_secrets(settings)
    assert again is not None and again.credentials_key == first.credentials_key
    assert path.stat().st_mode & 0o077 == 0
