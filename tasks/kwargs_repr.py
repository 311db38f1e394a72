"""``kwargsrepr`` of a task message: what Celery's ``saferepr`` gives, faster for JSON.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

from typing import Any

from celery.utils.saferepr import saferepr

# saferepr's depth limit (its ``maxlevels`` default): containers nested deeper print as {...}
_MAX_LEVELS = 3
_BRACKETS: dict[type, tuple[str, str]] = {dict: ("{", "}"), list: ("[", "]"), tuple: ("(", ")")}


class _Unsupported(Exception):  # noqa: N818 (a signal to fall back, not an error)
    pass


def kwargs_repr(kwargs: dict[str, Any], maxlen: int) -> str:
    """``celery.utils.saferepr.saferepr(kwargs, maxlen)``, fast for plain JSON values.

    saferepr only truncates once its output reaches ``maxlen``; below that it is the
    plain rendering below (strings in single quotes with ``'`` escaped and nothing else,
    numbers by ``str``, containers deeper than 3 levels as ``{...}``). Anything else
    (another type, a long result) goes to saferepr itself.
    """
    out: list[str] = []
    try:
        _render(kwargs, 0, out)
    except _Unsupported:
        return str(saferepr(kwargs, maxlen))
    text = "".join(out)
    return text if len(text) < maxlen else str(saferepr(kwargs, maxlen))


def _render(value: Any, level: int, out: list[str]) -> None:
    kind = type(value)
    if kind is str:
        out.append("'" + value.replace("'", "\\'") + "'")
    elif kind is int or kind is float or kind is bool:
        out.append(str(value))
    elif value is None:
        out.append("None")
    elif kind in _BRACKETS:
        _render_container(value, kind, level, out)
    else:
        raise _Unsupported


def _render_container(value: Any, kind: type, level: int, out: list[str]) -> None:
    start, end = _BRACKETS[kind]
    if kind is tuple and len(value) == 1:
        end = ",)"
    if level >= _MAX_LEVELS:
        out.append(f"{start}...{end}")
        return
    out.append(start)
    if kind is dict:
        for i, (key, item) in enumerate(value.items()):
            if type(key) is not str:
                raise _Unsupported
            if i:
                out.append(", ")
            _render(key, 0, out)
            out.append(": ")
            _render(item, level + 1, out)
    else:
        for i, item in enumerate(value):
            if i:
                out.append(", ")
            _render(item, level + 1, out)
    out.append(end)
