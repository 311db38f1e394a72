"""Hybrid search: the request, vector and BM25 retrieval, fusion and graph expansion."""
