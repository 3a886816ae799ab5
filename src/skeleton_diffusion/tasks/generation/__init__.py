"""tasks.generation."""
