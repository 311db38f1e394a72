-- Archives uploaded to POST /v1/jobs/archive, kept where every ingest worker reaches them
-- (pipeline/sources/uploads.py): the API streams the request body in as parts, the ingest
-- worker reads them back into its scratch folder. A job names its upload `upload:<id>`;
-- an upload that no queued or running job names is collected a day after it was made.
CREATE TABLE source_uploads (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL,
    size_bytes  bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    complete    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE source_upload_parts (
    upload_id   uuid NOT NULL REFERENCES source_uploads (id) ON DELETE CASCADE,
    part_no     integer NOT NULL CHECK (part_no >= 0),
    data        bytea NOT NULL,
    PRIMARY KEY (upload_id, part_no)
);
