"""supervised_lifter."""
