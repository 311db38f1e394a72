-- API token lifecycle (issue 23): scopes, a public id, and when a token was last used.
--
-- scopes: what a token may do: 'read' (search, graph, repositories, jobs' status),
-- 'write' (enqueue and cancel jobs, uploads, reconcile) and 'admin' (the tenant's tokens
-- and git credentials). Tokens made before this migration keep every scope, so that
-- nothing that worked stops working.
-- token_id: a short public name ('tk_' and 16 hex digits, random, unrelated to the
-- token) by which a token is listed and revoked without being shown.
-- last_used_at: set when the token authenticates, at most once a minute per token (the
-- statement's condition), so that busy tokens do not turn every read into a write.
ALTER TABLE api_tokens
    ADD COLUMN scopes text[] NOT NULL DEFAULT ARRAY['read', 'write', 'admin']::text[]
        CHECK (cardinality(scopes) >= 1 AND scopes <@ ARRAY['read', 'write', 'admin']::text[]),
    ADD COLUMN token_id text,
    ADD COLUMN last_used_at timestamptz;

UPDATE api_tokens
SET token_id = 'tk_' || left(replace(gen_random_uuid()::text, '-', ''), 16)
WHERE token_id IS NULL;

ALTER TABLE api_tokens
    ALTER COLUMN token_id SET NOT NULL,
    ADD CONSTRAINT api_tokens_token_id_shape CHECK (token_id ~ '^tk_[0-9a-f]{16}$'),
    ADD CONSTRAINT api_tokens_token_id_key UNIQUE (token_id);
