"""nn.graph."""
