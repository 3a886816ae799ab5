"""methods.zero_velocity."""
