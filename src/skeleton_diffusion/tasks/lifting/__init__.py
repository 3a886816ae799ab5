"""tasks.lifting."""
