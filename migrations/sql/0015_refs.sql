-- Refs: a repository has many (branches, tags, pull requests), each with its own
-- searchable snapshot (pipeline/refs.py, statements in pipeline/statements/snapshot_sql.py).
--
-- Snapshots stay keyed by (repository, commit) and are shared: two refs at one commit
-- read one snapshot, and chunk rows stay keyed by file version, so a branch that changes
-- three files adds three files' rows. A snapshot is 'ready' while at least one ref holds
-- it; the last ref that lets it go supersedes it (its file list goes, and with it the
-- chunk rows and kept symbols of versions no other held or indexing snapshot lists).
--
-- Order: every job takes a number from jobs_seq when it is created; a ref records the
-- number of the job that published it, and a job with a smaller number never replaces
-- it (jobs that finish out of order cannot leave the older commit searchable).

ALTER TABLE repositories
    ADD COLUMN default_ref text NOT NULL DEFAULT 'main'
        CHECK (length(default_ref) BETWEEN 1 AND 256);

CREATE TABLE refs (
    repository_id  bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    snapshot_id    bigint NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    job_seq        bigint NOT NULL DEFAULT 0,
    published_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, name)
);
CREATE INDEX refs_snapshot ON refs (snapshot_id);
-- A snapshot a live job is building is not released under it (snapshot_sql.release).
CREATE INDEX jobs_live_snapshot ON jobs (snapshot_id) WHERE status IN ('queued', 'running');

-- The searchable snapshot of each repository becomes its default ref.
INSERT INTO refs (repository_id, name, snapshot_id)
SELECT r.id, r.default_ref, r.searchable_snapshot_id
FROM repositories AS r WHERE r.searchable_snapshot_id IS NOT NULL;

ALTER TABLE repositories DROP COLUMN searchable_snapshot_id;

-- The ref a job publishes to (resolved at creation: the repository's default ref when
-- the request names none) and its place in creation order.
CREATE SEQUENCE jobs_seq;
ALTER TABLE jobs
    ADD COLUMN ref_name text NOT NULL DEFAULT 'main' CHECK (length(ref_name) BETWEEN 1 AND 256),
    ADD COLUMN seq bigint NOT NULL DEFAULT nextval('jobs_seq');
ALTER SEQUENCE jobs_seq OWNED BY jobs.seq;
ALTER TABLE jobs ALTER COLUMN ref_name DROP DEFAULT;

-- One live job per (repository, ref, commit): the same commit asked for on another ref
-- is a job of its own (it publishes the shared snapshot to that ref, from the cache). A
-- done job is answered again only while its ref still holds its commit (job_sql
-- .job_by_commit), so a ref can go back to a commit it held before (a force push, a
-- branch deleted and made again): only live jobs are unique here.
DROP INDEX jobs_repository_dedupe_commit;
CREATE UNIQUE INDEX jobs_repository_ref_dedupe_commit ON jobs (repository_id, ref_name, dedupe_commit)
    WHERE dedupe_commit IS NOT NULL AND status IN ('queued', 'running');
