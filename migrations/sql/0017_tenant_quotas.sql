-- Tenant quotas (pipeline/quotas.py; statements in pipeline/statements/quota_sql.py).
--
-- An operator sets a tenant's limits with `quarry quota set` (over PostgreSQL, never over
-- the API: a tenant cannot raise its own); a NULL limit is the settings' default
-- (QUARRY_QUOTA_*).
CREATE TABLE tenant_quotas (
    tenant_id        text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    concurrent_jobs  integer CHECK (concurrent_jobs >= 0),
    files_per_day    bigint CHECK (files_per_day >= 0),
    stored_chunks    bigint CHECK (stored_chunks >= 0),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The files each job's ingest charged to its tenant's day (UTC): one row per job, so an
-- ingest run again charges nothing more. No foreign key to jobs: deleting a repository
-- (and its jobs) does not give back what its jobs were charged today.
CREATE TABLE quota_charges (
    job_id      uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day         date NOT NULL,
    files       bigint NOT NULL CHECK (files >= 0),
    charged_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quota_charges_tenant_day ON quota_charges (tenant_id, day);
