-- Push webhooks (pipeline/push_hooks/): a tenant's hook for one of its repositories. The
-- hook id is the opaque part of the hook's URL; the secret is derived from
-- QUARRY_WEBHOOK_SECRET and the hook (never stored). clone_url is what a push clones,
-- given by the tenant and checked by the source policy when the hook was registered.
CREATE TABLE push_hooks (
    hook_id     text PRIMARY KEY,
    tenant_id   text NOT NULL,
    repo_name   text NOT NULL,
    platform    text NOT NULL CHECK (platform IN ('github', 'gitlab')),
    clone_url   text NOT NULL,
    credential  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, repo_name, platform)
);
