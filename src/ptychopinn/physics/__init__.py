"""physics stage."""
