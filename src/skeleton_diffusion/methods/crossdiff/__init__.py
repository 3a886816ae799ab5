"""methods.crossdiff."""
