"""Statement builders: Cypher and SQL as strings and parameters, no I/O."""
