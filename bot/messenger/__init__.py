"""messenger adapter."""
