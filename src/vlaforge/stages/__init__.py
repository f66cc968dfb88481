"""Library entry points of the pipeline stages; components and the CLI call these."""
