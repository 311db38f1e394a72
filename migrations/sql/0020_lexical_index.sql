-- The full-text index that serves the true BM25 top-k without scoring every match
-- (issue 20 item 1): impact-ordered postings and per-repository term statistics, kept
-- by triggers on chunks in the same transaction as the rows, so that whatever writes or
-- deletes chunk rows (the write stage's upsert, retain_versions, delete_files, the
-- deletion sweeper, a cascade from repositories) keeps them exact: no lost or ghost
-- postings, and a retried write that changes nothing changes nothing here either.
--
-- BM25 (k1 1.2, b 0.75) over a search's repositories: N = their chunk rows, df = their
-- rows holding the word, avgdl = their mean length (distinct words of a row's tsvector),
-- tf = the word's positions in the row. The algorithm that reads this is in
-- pipeline/search/bm25.py and pipeline/statements/search_sql.py.

-- A chunk row's small, stable key: what a posting points at.
ALTER TABLE chunks ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX chunks_seq ON chunks (seq);

-- A word's BM25 weight in a row with the reference mean length 64 (k1 1.2, b 0.75).
-- Postings are ordered by it; a search with the real mean length A reads the weight
-- again from tf and dl, and bounds it by impact * max(1, A / 64) (see bm25.py).
CREATE FUNCTION quarry_bm25_impact(tf integer, dl integer) RETURNS real
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * dl / 64.0)))::real;

-- One posting per (row, word): read by (repository, word) in descending impact, so a
-- search reads each word's best rows first and stops where they can no longer count.
CREATE TABLE lexical_postings (
    repository_id   bigint NOT NULL,
    lexeme          text NOT NULL,
    impact          real NOT NULL,
    seq             bigint NOT NULL,
    tf              smallint NOT NULL,
    dl              integer NOT NULL
);
-- (Its index, lexical_postings_impact, is built after the backfill at the end.)

-- Term statistics as signed deltas, appended by each statement that adds or removes
-- rows (no row is updated in place, so concurrent writers of one repository never wait
-- on each other here); a search sums them. lexeme '' holds the rows (df) and the sum of
-- their lengths (len). quarry_lexical_compact folds a repository's deltas into one row
-- per word; the insert trigger calls it once a repository has 64 unfolded statements.
CREATE TABLE lexical_stats (
    repository_id   bigint NOT NULL,
    lexeme          text NOT NULL,
    df              bigint NOT NULL,
    len             bigint NOT NULL DEFAULT 0
);
-- (Its index, lexical_stats_key, is built after the backfill at the end.)

-- Only the words with several rows are rewritten: a write's cost stays with the words
-- the last statements touched, not the repository's whole vocabulary.
CREATE FUNCTION quarry_lexical_compact(repo bigint) RETURNS void
    LANGUAGE sql AS $$
    WITH several AS (
        SELECT lexeme FROM lexical_stats WHERE repository_id = repo
        GROUP BY lexeme HAVING count(*) > 1
    ),
    gone AS (
        DELETE FROM lexical_stats s USING several
        WHERE s.repository_id = repo AND s.lexeme = several.lexeme
        RETURNING s.lexeme, s.df, s.len
    )
    INSERT INTO lexical_stats (repository_id, lexeme, df, len)
    SELECT repo, lexeme, sum(df), sum(len) FROM gone GROUP BY lexeme
    HAVING sum(df) <> 0 OR sum(len) <> 0
$$;

-- Postings and statistics of the rows a statement added (INSERT) or removed (DELETE),
-- read from the statement's transition table (visible to this function only, hence the
-- dynamic statements over a source named here). A removal in a repository that no
-- longer exists (a cascade from repositories) leaves no delta behind.
CREATE FUNCTION quarry_chunks_lexical() RETURNS trigger
    LANGUAGE plpgsql AS $fn$
DECLARE
    words CONSTANT text := '(SELECT r.repository_id, u.lexeme, r.seq,'
        ' coalesce(array_length(u.positions, 1), 1) AS tf, length(r.tsv) AS dl'
        ' FROM %1$s r, unnest(r.tsv) u)';
    stats CONSTANT text := 'INSERT INTO lexical_stats (repository_id, lexeme, df, len)'
        ' SELECT w.repository_id, w.lexeme, %2$s * count(*), 0 FROM ' || words || ' w'
        ' WHERE EXISTS (SELECT 1 FROM repositories x WHERE x.id = w.repository_id)'
        ' GROUP BY w.repository_id, w.lexeme'
        ' UNION ALL SELECT r.repository_id, '''', %2$s * count(*), %2$s * sum(length(r.tsv))'
        ' FROM %1$s r WHERE EXISTS (SELECT 1 FROM repositories x WHERE x.id = r.repository_id)'
        ' GROUP BY r.repository_id';
    added text;
    removed text;
    repo bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        added := 'lexical_new';
    ELSE
        removed := 'lexical_old';
    END IF;
    IF removed IS NOT NULL THEN
        EXECUTE 'DELETE FROM lexical_postings p USING ' || format(words, removed) || ' d'
            ' WHERE p.repository_id = d.repository_id AND p.lexeme = d.lexeme'
            ' AND p.impact = quarry_bm25_impact(d.tf, d.dl) AND p.seq = d.seq';
        EXECUTE format(stats, removed, -1);
    END IF;
    IF added IS NOT NULL THEN
        EXECUTE 'INSERT INTO lexical_postings (repository_id, lexeme, impact, seq, tf, dl)'
            ' SELECT d.repository_id, d.lexeme, quarry_bm25_impact(d.tf, d.dl), d.seq,'
            ' d.tf, d.dl FROM ' || format(words, added) || ' d';
        EXECUTE format(stats, added, 1);
        -- Fold a repository's deltas once it has many (one compaction at a time).
        FOR repo IN EXECUTE format('SELECT DISTINCT repository_id FROM %s r', added) LOOP
            IF (SELECT count(*) FROM lexical_stats
                WHERE repository_id = repo AND lexeme = '') > 64
               AND pg_try_advisory_xact_lock(20, hashtext(repo::text)) THEN
                PERFORM quarry_lexical_compact(repo);
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END $fn$;

CREATE TRIGGER chunks_lexical_insert AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS lexical_new
    FOR EACH STATEMENT EXECUTE FUNCTION quarry_chunks_lexical();
CREATE TRIGGER chunks_lexical_delete AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS lexical_old
    FOR EACH STATEMENT EXECUTE FUNCTION quarry_chunks_lexical();

-- An UPDATE that changes a row's words or repository (rare: a file's new version is a
-- new row; this is a re-chunk of the same version, or a move) moves its postings and
-- statistics row by row. Any other update (a model's vectors written or cleared) fires
-- nothing: the WHEN is false, and no transition table copies whole rows.
CREATE FUNCTION quarry_chunk_lexical_update() RETURNS trigger
    LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM lexical_postings p
    USING (SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf
           FROM unnest(OLD.tsv) u) d
    WHERE p.repository_id = OLD.repository_id AND p.lexeme = d.lexeme
      AND p.impact = quarry_bm25_impact(d.tf, length(OLD.tsv)) AND p.seq = OLD.seq;
    INSERT INTO lexical_postings (repository_id, lexeme, impact, seq, tf, dl)
    SELECT NEW.repository_id, u.lexeme, quarry_bm25_impact(t.tf, length(NEW.tsv)), NEW.seq,
           t.tf, length(NEW.tsv)
    FROM unnest(NEW.tsv) u,
         LATERAL (SELECT coalesce(array_length(u.positions, 1), 1) AS tf) t;
    INSERT INTO lexical_stats (repository_id, lexeme, df, len)
    SELECT OLD.repository_id, u.lexeme, -1, 0 FROM unnest(OLD.tsv) u
    UNION ALL SELECT OLD.repository_id, '', -1, -length(OLD.tsv)
    UNION ALL SELECT NEW.repository_id, u.lexeme, 1, 0 FROM unnest(NEW.tsv) u
    UNION ALL SELECT NEW.repository_id, '', 1, length(NEW.tsv);
    RETURN NULL;
END $fn$;
CREATE TRIGGER chunks_lexical_update AFTER UPDATE ON chunks
    FOR EACH ROW
    WHEN (OLD.tsv IS DISTINCT FROM NEW.tsv OR OLD.repository_id IS DISTINCT FROM NEW.repository_id)
    EXECUTE FUNCTION quarry_chunk_lexical_update();

-- A repository's statistics go with it (its postings went with its chunk rows).
CREATE FUNCTION quarry_repositories_lexical() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM lexical_stats s USING lexical_gone g WHERE s.repository_id = g.id;
    DELETE FROM lexical_postings p USING lexical_gone g WHERE p.repository_id = g.id;
    RETURN NULL;
END $$;
CREATE TRIGGER repositories_lexical_delete AFTER DELETE ON repositories
    REFERENCING OLD TABLE AS lexical_gone
    FOR EACH STATEMENT EXECUTE FUNCTION quarry_repositories_lexical();

-- The rows already there.
INSERT INTO lexical_postings (repository_id, lexeme, impact, seq, tf, dl)
SELECT c.repository_id, u.lexeme,
       quarry_bm25_impact(coalesce(array_length(u.positions, 1), 1), length(c.tsv)),
       c.seq, coalesce(array_length(u.positions, 1), 1), length(c.tsv)
FROM chunks c, unnest(c.tsv) u;
INSERT INTO lexical_stats (repository_id, lexeme, df, len)
SELECT c.repository_id, u.lexeme, count(*), 0 FROM chunks c, unnest(c.tsv) u
GROUP BY c.repository_id, u.lexeme
UNION ALL
SELECT c.repository_id, '', count(*), sum(length(c.tsv)) FROM chunks c GROUP BY c.repository_id;
CREATE INDEX lexical_postings_impact
    ON lexical_postings (repository_id, lexeme, impact DESC, seq) INCLUDE (tf, dl);
CREATE INDEX lexical_stats_key ON lexical_stats (repository_id, lexeme) INCLUDE (df, len);
