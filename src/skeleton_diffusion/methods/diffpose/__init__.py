"""diffpose."""
