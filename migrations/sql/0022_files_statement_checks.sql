-- A snapshot's file list is written by one COPY of every file of the commit (ingest,
-- snapshots.begin): 2,823 rows for a one-file change of Django's sdist. Its two foreign
-- keys checked each row on its own, a lookup and a row lock on snapshots and on
-- repositories per file: 25 of the 44 ms that COPY took (bench/results/jobs.md, "The
-- snapshot's file list"). The same guarantees are now kept once per statement:
--
-- * an INSERT or UPDATE of files checks, once per distinct (snapshot, repository) pair
--   it wrote, that the snapshot exists and belongs to that repository, and holds the
--   snapshot row FOR KEY SHARE as a foreign key would, so that the snapshot cannot be
--   deleted before the writer commits (a repository cannot either: deleting it deletes
--   its snapshots first). A missing or mismatched parent is a foreign_key_violation
--   naming it, as before;
-- * a DELETE of snapshots deletes their files (what ON DELETE CASCADE did). A deleted
--   repository takes its snapshots (their own foreign key cascades) and so their files.
ALTER TABLE files DROP CONSTRAINT IF EXISTS files_snapshot_id_fkey;
ALTER TABLE files DROP CONSTRAINT IF EXISTS files_repository_id_fkey;

CREATE OR REPLACE FUNCTION quarry_files_check_parents() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    PERFORM 1 FROM snapshots AS s
    WHERE s.id IN (SELECT DISTINCT snapshot_id FROM written_files)
    ORDER BY s.id
    FOR KEY SHARE OF s;
    SELECT w.snapshot_id, w.repository_id INTO bad
    FROM (SELECT DISTINCT snapshot_id, repository_id FROM written_files) AS w
    WHERE NOT EXISTS (
        SELECT 1 FROM snapshots AS s
        WHERE s.id = w.snapshot_id AND s.repository_id = w.repository_id
    )
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'files of snapshot % (repository %): no such snapshot of that repository',
            bad.snapshot_id, bad.repository_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION quarry_snapshots_drop_files() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM files AS f USING gone_snapshots AS g WHERE f.snapshot_id = g.id;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS files_check_parents_insert ON files;
CREATE TRIGGER files_check_parents_insert
    AFTER INSERT ON files REFERENCING NEW TABLE AS written_files
    FOR EACH STATEMENT EXECUTE FUNCTION quarry_files_check_parents();

DROP TRIGGER IF EXISTS files_check_parents_update ON files;
CREATE TRIGGER files_check_parents_update
    AFTER UPDATE ON files REFERENCING NEW TABLE AS written_files
    FOR EACH STATEMENT EXECUTE FUNCTION quarry_files_check_parents();

DROP TRIGGER IF EXISTS snapshots_drop_files ON snapshots;
CREATE TRIGGER snapshots_drop_files
    AFTER DELETE ON snapshots REFERENCING OLD TABLE AS gone_snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION quarry_snapshots_drop_files();
