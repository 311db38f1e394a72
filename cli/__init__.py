"""The `quarry` command line: the local stack, migrations, settings, workers, chunking."""
