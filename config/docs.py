"""Documentation of the settings, generated from the one place they are defined.

Must not import: anything of Quarry but config.
"""

from __future__ import annotations

from pydantic_core import PydanticUndefined

from config.settings import QuarrySettings, env_name, shown_value


def settings_table() -> str:
    lines = [
        "| variable | default | description |",
        "|---|---|---|",
    ]
    for name, info in QuarrySettings.model_fields.items():
        default = info.default
        if default is PydanticUndefined or default is None:
            shown = "unset"
        elif isinstance(default, tuple):
            shown = "`" + ",".join(str(x) for x in default) + "`"
        else:
            shown = f"`{default}`"
        description = (info.description or "").replace("|", "\\|")
        lines.append(f"| `{env_name(name)}` | {shown} | {description} |")
    return "\n".join(lines) + "\n"


def effective_settings(settings: QuarrySettings) -> list[str]:
    return [
        f"{env_name(name)}={shown_value(name, getattr(settings, name))}"
        for name in QuarrySettings.model_fields
    ]
