"""Example budgets of the generated bad-input tests, and the count of examples they ran.

Two hypothesis profiles, registered by this folder's conftest: ``ci`` (the default here:
about 2,600 examples over the folder, well under a minute) and ``long`` (the same tests
with ``LONG_FACTOR`` times the examples: 10,400), chosen with hypothesis' own
option: ``pytest tests/reliability --hypothesis-profile=long``. Only the tests of this
folder read them (:func:`budget`); other hypothesis tests keep their own settings.

Each example has a deadline (a slow or hanging input fails, shrunk, naming the input)
and each test a pytest timeout (an input that never returns fails the test).

Must not import: anything of the product; this is test plumbing.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from hypothesis import HealthCheck, settings

CI_PROFILE = "ci"
LONG_PROFILE = "long"
LONG_FACTOR = 4
DEADLINE_S = 5.0
SUMMARY = Path(__file__).resolve().parents[2] / "test-artifacts" / "reliability" / "inputs.json"

# Examples run per test function in this session (every call hypothesis made).
EXAMPLES_RUN: Counter[str] = Counter()

P = ParamSpec("P")
R = TypeVar("R")


def register_profiles() -> None:
    """The ``ci`` and ``long`` profiles (idempotent)."""
    settings.register_profile(
        CI_PROFILE,
        max_examples=100,
        deadline=timedelta(seconds=DEADLINE_S),
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )
    settings.register_profile(
        LONG_PROFILE, parent=settings.get_profile(CI_PROFILE), max_examples=100 * LONG_FACTOR
    )


def long_run() -> bool:
    return settings.get_current_profile_name() == LONG_PROFILE


def budget(ci_examples: int, *, deadline_s: float = DEADLINE_S) -> settings:
    """Settings for a test that runs ``ci_examples`` examples under ``ci`` (the
    default), ``LONG_FACTOR`` times as many under ``long``."""
    register_profiles()
    factor = LONG_FACTOR if long_run() else 1
    parent = settings.get_profile(LONG_PROFILE if long_run() else CI_PROFILE)
    return settings(
        parent=parent,
        max_examples=ci_examples * factor,
        deadline=timedelta(seconds=deadline_s),
    )


def counted(test: Callable[P, R]) -> Callable[P, R]:
    """Count every call of ``test`` (put it under ``@given``)."""

    @functools.wraps(test)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        EXAMPLES_RUN[test.__name__] += 1
        return test(*args, **kwargs)

    return wrapper


def write_summary(path: Path = SUMMARY) -> dict[str, Any] | None:
    """The examples run per test and in total, as JSON at ``path`` (nothing when none ran)."""
    if not EXAMPLES_RUN:
        return None
    summary = {
        "profile": LONG_PROFILE if long_run() else CI_PROFILE,
        "examples_per_test": dict(sorted(EXAMPLES_RUN.items())),
        "total_examples": sum(EXAMPLES_RUN.values()),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
