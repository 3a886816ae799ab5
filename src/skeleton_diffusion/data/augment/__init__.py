"""data.augment."""
