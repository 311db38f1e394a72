-- What the job, snapshot and token adapters need beyond 0004: the job's source, its
-- one-line message and webhook delivery log, the race-safe "same commit -> same job"
-- rule, and the symbols kept per file version.

-- jobs.commit_sha stays NOT NULL: '' until the producer resolves it (JobStore.start).
ALTER TABLE jobs
    ADD COLUMN source_kind      text NOT NULL DEFAULT 'path'
                                CHECK (source_kind IN ('path', 'git', 'archive')),
    ADD COLUMN source_location  text NOT NULL DEFAULT '',
    ADD COLUMN source_ref       text,
    ADD COLUMN message          text NOT NULL DEFAULT '',
    ADD COLUMN webhooks         jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- The commit the job was created for, when it was known at creation (else NULL).
    -- The unique index is on this column, not on commit_sha: a job created without a
    -- commit that resolves to one already indexed must still be able to record it.
    ADD COLUMN dedupe_commit    text,
    ADD CONSTRAINT jobs_dedupe_commit_is_the_commit
        CHECK (dedupe_commit IS NULL OR (dedupe_commit <> '' AND dedupe_commit = commit_sha));

-- One live job per (repository, commit) asked for: a second create of the same commit
-- conflicts and is answered with the first job. A failed or cancelled job leaves the
-- index, so the commit can be indexed again; a done one stays and is returned again.
CREATE UNIQUE INDEX jobs_repository_dedupe_commit ON jobs (repository_id, dedupe_commit)
    WHERE dedupe_commit IS NOT NULL AND status NOT IN ('failed', 'cancelled');
CREATE INDEX jobs_repository_commit ON jobs (repository_id, commit_sha);
CREATE INDEX jobs_tenant_created ON jobs (tenant_id, created_at DESC);

-- Symbols of each file version, [[name, qualified_name, kind], ...], so that a later
-- job resolves calls into files it does not re-read. Rows of versions that are in no
-- current snapshot are deleted when a snapshot is published.
CREATE TABLE file_symbols (
    repository_id  bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    path           text NOT NULL,
    file_sha256    text NOT NULL,
    symbols        jsonb NOT NULL DEFAULT '[]'::jsonb,
    PRIMARY KEY (repository_id, path, file_sha256)
);
