-- A tenant's share of each API process's searches and graph reads (api/search_slots.py),
-- set per tenant by an operator (`quarry quota set --search-concurrency N`). NULL: the
-- setting's (QUARRY_SEARCH_TENANT_CONCURRENCY). 0 lifts the bound for the tenant, as the
-- setting's 0 does for every tenant.
ALTER TABLE tenant_quotas
    ADD COLUMN IF NOT EXISTS search_concurrency integer CHECK (search_concurrency >= 0);
