"""Adapters: the ONLY modules that import drivers (neo4j, psycopg, redis, httpx, torch ...).

Each translates its driver's exceptions into ``pipeline.errors`` once, at the edge.
"""
