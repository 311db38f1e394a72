-- Tenants' git credentials for private repositories (pipeline/credentials/): an HTTPS
-- token or an SSH deploy key, sealed with AES-256-GCM under the key named by key_id
-- (QUARRY_CREDENTIALS_KEY); only the ciphertext is stored. The scope (a URL prefix) and
-- the pinned known_hosts lines are not secret and stay readable.
CREATE TABLE credentials (
    tenant_id    text NOT NULL,
    name         text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('https_token', 'ssh_key')),
    scope        text NOT NULL,
    username     text,
    known_hosts  text,
    fingerprint  text,
    key_id       text NOT NULL,
    ciphertext   bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    rotated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name),
    UNIQUE (tenant_id, scope)
);
