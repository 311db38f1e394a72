"""The API's kept token answers: a revocation through this process applies at once, also
to a lookup that was under way when it happened (its answer serves that request alone)."""

from __future__ import annotations

from api.state import ApiState
from config.endpoints import resolve_endpoints
from config.settings import load_settings
from pipeline.tokens import TokenGrant

GRANT = TokenGrant("acme", "tk_0123456789abcdef", frozenset({"read"}))


class _Tokens:
    """A token store whose lookup is overtaken by a revocation through the API."""

    def __init__(self, state: ApiState, *, revoke_during_lookup: bool) -> None:
        self.state, self.revoke, self.lookups = state, revoke_during_lookup, 0

    def identify(self, token: str) -> TokenGrant | None:
        self.lookups += 1
        if self.revoke:
            self.state.forget_token(GRANT.token_id)
        return GRANT


def _state(*, revoke_during_lookup: bool) -> tuple[ApiState, _Tokens]:
    settings = load_settings(env={})
    state = ApiState(settings, resolve_endpoints(settings))
    tokens = _Tokens(state, revoke_during_lookup=revoke_during_lookup)
    state._built["tokens"] = tokens
    return state, tokens


def test_an_answer_is_kept_between_lookups() -> None:
    state, tokens = _state(revoke_during_lookup=False)
    assert state.grant_for("qk_x") == GRANT and state.grant_for("qk_x") == GRANT
    assert tokens.lookups == 1


def test_an_answer_overtaken_by_a_revocation_is_not_kept() -> None:
    state, tokens = _state(revoke_during_lookup=True)
    assert state.grant_for("qk_x") == GRANT  # the request in flight during the revocation
    tokens.revoke = False
    state.grant_for("qk_x")
    assert tokens.lookups == 2  # asked again: the stale answer was never kept
