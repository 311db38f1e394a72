-- The graph stage in bounded tasks (pipeline/stages/graph.py).
--
-- Each file graph a job's chunk stage extracted waits here (zlib-compressed JSON of
-- pipeline.messages.encode_file_graph) until a graph batch has resolved and written it;
-- the batch then deletes its rows, so the rows left are the graph work left. Rows of a
-- job that ended are collected by the sweeper.
CREATE TABLE job_file_graphs (
    job_id  uuid NOT NULL,
    path    text NOT NULL,
    graph   bytea NOT NULL,
    PRIMARY KEY (job_id, path)
);

-- The kept symbols of each file version, one row per symbol, by name: a graph batch
-- resolves its files' calls and bases with the candidates of the names they use, not with
-- every symbol of the repository. Rows go with their file_symbols row.
CREATE TABLE symbol_names (
    repository_id   bigint NOT NULL,
    path            text NOT NULL,
    file_sha256     text NOT NULL,
    name            text NOT NULL,
    qualified_name  text NOT NULL,
    kind            text NOT NULL,
    FOREIGN KEY (repository_id, path, file_sha256)
        REFERENCES file_symbols (repository_id, path, file_sha256) ON DELETE CASCADE
);
CREATE INDEX symbol_names_by_name ON symbol_names (repository_id, name, kind, path, qualified_name);
CREATE INDEX symbol_names_by_file ON symbol_names (repository_id, path, file_sha256);

INSERT INTO symbol_names (repository_id, path, file_sha256, name, qualified_name, kind)
SELECT fs.repository_id, fs.path, fs.file_sha256, s ->> 0, s ->> 1, s ->> 2
FROM file_symbols AS fs CROSS JOIN jsonb_array_elements(fs.symbols) AS s;
