"""Job sources as a client writes them, and which local paths a job may read."""
