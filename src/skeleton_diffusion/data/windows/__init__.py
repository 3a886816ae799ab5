"""data.windows."""
