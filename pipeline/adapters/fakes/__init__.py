"""The behaving in-memory fake of every port, for unit tests; contract tests run each
against its real adapter."""
