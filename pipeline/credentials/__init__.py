"""Tenants' git credentials: HTTPS tokens and SSH deploy keys for private repositories.

``cipher`` encrypts them at rest (AES-256-GCM, a key id per key for rotation),
``material`` checks what a client sends (tokens, private keys, pinned known_hosts lines),
``scopes`` says which URLs a credential applies to, ``vault`` ties these to the
:class:`~pipeline.ports.CredentialStore`, and ``redaction`` scrubs secrets from messages.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""
