"""Small shared helpers: devices, safe/atomic file IO, user-facing errors."""
