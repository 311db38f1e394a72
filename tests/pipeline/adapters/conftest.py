"""Fixtures shared by the model adapters' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    """No Hugging Face hub access for a module's models (they load from folders)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield
