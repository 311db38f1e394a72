"""Settings fields: what tenants send in: the sources a job may name and the webhooks
it may ask for.

A group of :class:`config.settings.QuarrySettings`, whose fields they are (flat:
``settings.<field>``, env var ``QUARRY_<FIELD>``); validators live on that class.

Must not import: anything of Quarry but config (config is the leaf).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

WEBHOOK_ADDRESS_KINDS = (
    "loopback",
    "private",
    "link-local",
    "reserved",
    "multicast",
    "unspecified",
)


class SourceFields(BaseModel):
    """Settings: sources."""

    source_max_archive_bytes: int = Field(
        200 * 2**20, ge=1, description="Largest uploaded .tar.gz accepted (compressed bytes)."
    )
    source_max_extracted_bytes: int = Field(
        2 * 2**30, ge=1, description="Most bytes an archive may extract to."
    )
    source_max_members: int = Field(
        200_000, ge=1, description="Most members (files and folders) of an archive."
    )
    push_hook_max_body_bytes: int = Field(
        2**20,
        ge=1024,
        description="Largest push-webhook delivery (GitHub or GitLab payload) read; a "
        "larger one answers 413 and enqueues nothing.",
    )
    source_clone_timeout_s: float = Field(
        300.0, gt=0, description="Time limit of a shallow git clone."
    )
    source_allow_file_urls: bool = Field(
        False,
        description="Accept local git repositories as clone sources (`file://`); for tests.",
    )
    source_allowed_roots: tuple[Path, ...] = Field(
        (),
        description="Folders (comma-separated, absolute) under which a job may name a local "
        "folder, archive or `file://` repository. Empty: no local path is accepted. The data "
        "folder and the secrets folder are refused whatever this says.",
    )
    source_git_ca_file: Path | None = Field(
        None,
        description="PEM bundle of the certificate authorities git trusts for https "
        "remotes (GIT_SSL_CAINFO), in place of the system's; for a git server behind a "
        "private CA.",
    )
    credentials_key: SecretStr | None = Field(
        None,
        description="Key (32 bytes, URL-safe base64) that encrypts the tenants' git "
        "credentials at rest (AES-256-GCM). Unset: the local stack's own; without one the "
        "credential endpoints answer 503.",
    )
    credentials_previous_keys: SecretStr | None = Field(
        None,
        description="Retired credential keys (comma-separated), still read after a key "
        "rotation until `quarry credentials rekey` re-sealed every credential.",
    )


class WebhookFields(BaseModel):
    """Settings: webhooks."""

    webhook_secret: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key of webhook signatures. Unset: the local stack's own.",
    )
    webhook_allow_addresses: tuple[str, ...] = Field(
        (),
        description="Address kinds callbacks may resolve to anyway: loopback, private, link-local.",
    )
    webhook_timeout_s: float = Field(10.0, gt=0, le=120, description="Time limit of one delivery.")
    webhook_max_attempts: int = Field(
        10,
        ge=1,
        le=50,
        description="Deliveries tried per event (timeouts, 5xx, 429) before giving up; the "
        "last failure keeps the event as a dead letter (`quarry dlq list`).",
    )
    webhook_retry_base_s: float = Field(
        40.0,
        gt=0,
        le=3600,
        description="First wait before a failed delivery is tried again; each further wait "
        "doubles up to webhook_retry_cap_s, and each is scaled by a random 0.5-1.0. The "
        "defaults (40 s, 600 s, 10 attempts) wait 20-40, 40-80, 80-160, 160-320 s, then "
        "300-600 s five times: 30 to 60 minutes from the first attempt to the last.",
    )
    webhook_retry_cap_s: float = Field(
        600.0,
        gt=0,
        le=86400,
        description="Longest wait between two deliveries of one event; with "
        "task_time_limit_s it must stay below broker_visibility_timeout_s (a waiting retry "
        "is a message the broker would otherwise deliver a second time).",
    )
