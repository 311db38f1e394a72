-- The embedding models of this deployment (issue 21 item 5): which model's vectors
-- search reads ('active', exactly one once anything was embedded), which one a backfill
-- is filling ('backfilling', at most one), and those switched away from ('retired',
-- their vectors dropped). Each model's vectors live in its own storage: 'chunks' (the
-- chunks.embedding column, vector(384), the model registered first) or a table
-- chunk_vectors_<id> of its own, created by the registry with a vector(dimension)
-- column and its own HNSW index, so that any dimension works.
CREATE TABLE embedding_models (
    id              serial PRIMARY KEY,
    model_id        text NOT NULL UNIQUE,
    name            text NOT NULL,
    backend         text NOT NULL,
    dimension       integer NOT NULL CHECK (dimension BETWEEN 1 AND 16000),
    fingerprint     text NOT NULL DEFAULT '',
    storage         text NOT NULL CHECK (storage ~ '^(chunks|chunk_vectors_[0-9]+)$'),
    state           text NOT NULL CHECK (state IN ('active', 'backfilling', 'retired')),
    chunks_total    bigint NOT NULL DEFAULT 0,
    chunks_done     bigint NOT NULL DEFAULT 0,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    switched_at     timestamptz,
    retired_at      timestamptz,
    dropped_at      timestamptz
);
-- One active model and one backfill at a time, held by the database itself.
CREATE UNIQUE INDEX embedding_models_one_active ON embedding_models ((true))
    WHERE state = 'active';
CREATE UNIQUE INDEX embedding_models_one_backfill ON embedding_models ((true))
    WHERE state = 'backfilling';

-- The vectors already stored stay valid: their model (the most common model id of the
-- chunks; the others were never searched) becomes the first, active model, stored in
-- chunks.embedding. An empty index registers the configured model on first use.
INSERT INTO embedding_models (model_id, name, backend, dimension, storage, state, switched_at)
SELECT m.model_id,
       CASE WHEN m.model_id LIKE '%+onnx-int8' THEN left(m.model_id, -length('+onnx-int8'))
            ELSE m.model_id END,
       CASE WHEN m.model_id LIKE '%+onnx-int8' THEN 'onnx-int8' ELSE 'torch' END,
       384, 'chunks', 'active', now()
FROM (
    SELECT model_id FROM chunks WHERE model_id IS NOT NULL AND embedding IS NOT NULL
    GROUP BY model_id ORDER BY count(*) DESC LIMIT 1
) AS m;

-- The embedding cache holds vectors of every registered model: any dimension (a key's
-- model fixes its dimension). No index reads the column, so this rewrites nothing.
ALTER TABLE embedding_cache ALTER COLUMN embedding TYPE vector;
