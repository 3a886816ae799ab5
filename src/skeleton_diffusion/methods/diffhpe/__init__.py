"""diffhpe."""
