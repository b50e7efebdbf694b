"""console adapter."""
