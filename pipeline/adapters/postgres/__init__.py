"""PostgreSQL + pgvector adapters."""
