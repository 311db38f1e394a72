"""The HTTP edge: app factory, routes, schemas. Never imports torch."""
