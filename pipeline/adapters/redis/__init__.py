"""Redis adapters: admission, the job board, breakers' shared state, dead letters."""
