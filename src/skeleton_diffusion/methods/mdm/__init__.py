"""methods.mdm."""
