"""tasks.hmp."""
