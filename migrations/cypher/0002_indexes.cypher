// Per-repository deletes and name lookups for call resolution and graph queries.
CREATE INDEX file_repo IF NOT EXISTS FOR (n:File) ON (n.repo);
CREATE INDEX symbol_repo IF NOT EXISTS FOR (n:Symbol) ON (n.repo);
CREATE INDEX symbol_name IF NOT EXISTS FOR (n:Symbol) ON (n.name);
CREATE INDEX chunk_repo IF NOT EXISTS FOR (n:Chunk) ON (n.repo);
