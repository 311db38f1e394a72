-- Tenants, their API tokens, repositories and the snapshots (commits) indexed of them.

CREATE TABLE tenants (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Tokens are stored as sha256 digests only; the clear token is shown once at creation.
CREATE TABLE api_tokens (
    id            bigserial PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token_sha256  bytea NOT NULL UNIQUE,
    label         text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id);

CREATE TABLE repositories (
    id                      bigserial PRIMARY KEY,
    tenant_id               text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    searchable_snapshot_id  bigint,
    created_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE snapshots (
    id             bigserial PRIMARY KEY,
    repository_id  bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    commit_sha     text NOT NULL,
    status         text NOT NULL DEFAULT 'indexing'
                   CHECK (status IN ('indexing', 'ready', 'failed', 'cancelled', 'superseded')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    UNIQUE (repository_id, commit_sha)
);

-- The snapshot that search reads; switched in one UPDATE when a job completes.
ALTER TABLE repositories
    ADD CONSTRAINT repositories_searchable_snapshot_fk
    FOREIGN KEY (searchable_snapshot_id) REFERENCES snapshots (id) ON DELETE SET NULL;

-- The files of a snapshot: what the next job diffs against.
CREATE TABLE files (
    snapshot_id     bigint NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    repository_id   bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    path            text NOT NULL,
    content_sha256  text NOT NULL,
    language        text NOT NULL,
    size_bytes      bigint NOT NULL CHECK (size_bytes >= 0),
    PRIMARY KEY (snapshot_id, path)
);
CREATE INDEX files_repository_path ON files (repository_id, path);
