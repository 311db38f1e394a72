"""Numbered SQL and Cypher migrations and their runner (see runner.py)."""
