"""skeletons.formats."""
