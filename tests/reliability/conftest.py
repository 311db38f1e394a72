"""Fixtures of the bad-input tests: the hypothesis profiles (``ci``, the default here, and
``long``: ``--hypothesis-profile=long``), an API client on the session stack, and the
summary of examples run, written to ``test-artifacts/reliability/inputs.json`` at the
end of the session."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from config.endpoints import Endpoints
from tests.reliability.profiles import register_profiles, write_summary

register_profiles()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    summary = write_summary()
    if summary is not None:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"reliability: {summary['total_examples']} generated inputs "
                f"({summary['profile']} profile)"
            )


@pytest.fixture(scope="module")
def api(endpoints: Endpoints) -> Iterator[httpx.Client]:
    """The session stack's API, with its development token."""
    headers = {"Authorization": f"Bearer {endpoints.api_token}"}
    with httpx.Client(base_url=endpoints.api_url, headers=headers, timeout=30) as client:
        yield client
