"""Benchmarks: the `quarry bench` commands (commands.py and the modules it runs) and
the scripts beside them, each writing its figures under bench/results/."""
