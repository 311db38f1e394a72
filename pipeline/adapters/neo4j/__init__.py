"""Neo4j (Bolt) adapters."""
