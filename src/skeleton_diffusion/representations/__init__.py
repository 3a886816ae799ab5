"""representations."""
