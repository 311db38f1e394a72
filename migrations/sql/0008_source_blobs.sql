-- Source files' bytes, content-addressed (pipeline/sources/blobs.py): the ingest stage
-- stores them, the chunk stage reads them on any host. One row per distinct content,
-- shared by every repository and snapshot that holds it, zlib-compressed; a blob that
-- no snapshot's files refer to any more is collected (BlobStore.collect).
CREATE TABLE source_blobs (
    sha256      text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes  bigint NOT NULL CHECK (size_bytes >= 0),
    data        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- Blob collection asks, per blob, whether any snapshot's file still has its content.
CREATE INDEX files_content_sha256 ON files (content_sha256);
