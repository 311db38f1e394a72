-- Chunks with their vectors and full-text, and the content-addressed embedding cache.
-- vector(384) is the dimension of the default model (all-MiniLM-L6-v2); a model of
-- another dimension needs a migration of its own.

CREATE TABLE chunks (
    repository_id   bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    id              text NOT NULL,
    path            text NOT NULL,
    file_sha256     text NOT NULL,
    start_line      integer NOT NULL CHECK (start_line >= 1),
    end_line        integer NOT NULL CHECK (end_line >= start_line),
    start_byte      integer NOT NULL CHECK (start_byte >= 0),
    end_byte        integer NOT NULL CHECK (end_byte >= start_byte),
    symbol          text NOT NULL DEFAULT '',
    kind            text NOT NULL,
    language        text NOT NULL,
    content         text NOT NULL,
    content_sha256  text NOT NULL,
    model_id        text,
    embedding       vector(384),
    tsv             tsvector NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, id)
);
CREATE INDEX chunks_repository_path ON chunks (repository_id, path, file_sha256);
CREATE INDEX chunks_embedding_hnsw ON chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);

-- Keyed by (model, content): identical chunks anywhere are embedded once per model.
CREATE TABLE embedding_cache (
    model_id        text NOT NULL,
    content_sha256  text NOT NULL,
    embedding       vector(384) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, content_sha256)
);
