-- pgvector: the `vector` type, distance operators and the HNSW index method.
CREATE EXTENSION IF NOT EXISTS vector;
