-- Indexing jobs: one per (repository, commit) unless an idempotency key says otherwise.

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    repository_id    bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    snapshot_id      bigint REFERENCES snapshots (id) ON DELETE SET NULL,
    commit_sha       text NOT NULL,
    idempotency_key  text,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    stage            text NOT NULL DEFAULT 'queued',
    callback_url     text,
    counters         jsonb NOT NULL DEFAULT '{}'::jsonb,
    errors           jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_repository_created ON jobs (repository_id, created_at DESC);
CREATE INDEX jobs_active ON jobs (status) WHERE status IN ('queued', 'running');
