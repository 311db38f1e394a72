-- Each tenant's webhook signing generation (pipeline/webhooks/tenant_keys.py). The secrets
-- are derived from QUARRY_WEBHOOK_SECRET, the tenant and the generation: none is stored.
-- No row: generation 1. A rotation makes generation + 1 current; until previous_until the
-- previous generation signs every delivery too (the overlap a receiver switches in).
CREATE TABLE webhook_keys (
    tenant_id       text PRIMARY KEY,
    generation      integer NOT NULL CHECK (generation >= 2),
    previous_until  timestamptz,
    rotated_at      timestamptz NOT NULL
);
