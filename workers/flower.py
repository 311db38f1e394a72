"""Flower for the local stack, with basic auth always on.

The credentials are passed in-process, never on the command line where `ps` shows them.

Must not import: api/, cli/.
"""

from __future__ import annotations

from config.endpoints import resolve_endpoints
from config.settings import load_settings


def main() -> None:
    from tasks.app import app

    settings = load_settings()
    endpoints = resolve_endpoints(settings)
    if not endpoints.flower_password:
        raise SystemExit("flower: no password configured (QUARRY_FLOWER_PASSWORD)")
    app.start(
        [
            "flower",
            f"--address={settings.flower_bind_host}",
            f"--port={settings.stack_flower_port}",
            f"--basic-auth={endpoints.flower_user}:{endpoints.flower_password}",
            "--purge_offline_workers=60",
        ]
    )


if __name__ == "__main__":
    main()
