"""Thin Celery glue: tasks decode arguments, call a use case, encode the result."""
