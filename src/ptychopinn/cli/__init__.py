"""Thin command-line layer: each sub-command lives in its own module and calls the library."""
