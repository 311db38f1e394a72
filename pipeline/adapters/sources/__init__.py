"""Fetching sources onto a local disk: git clones, archives, folders."""
