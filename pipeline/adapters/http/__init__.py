"""HTTP adapters (httpx)."""
