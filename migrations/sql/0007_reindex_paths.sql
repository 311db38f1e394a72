-- Files a job re-indexes even though their content is unchanged since the searchable
-- snapshot: `quarry reconcile` repairs a file that one store lost this way. A JSON
-- array of paths; empty for an ordinary job.
ALTER TABLE jobs ADD COLUMN reindex_paths jsonb NOT NULL DEFAULT '[]'::jsonb;
