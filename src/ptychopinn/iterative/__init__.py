"""iterative stage."""
