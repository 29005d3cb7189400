"""Typed exceptions. Every user-facing failure is one of these; the CLI turns them into a
one-line message and exit status 2 (no traceback)."""

from __future__ import annotations


class PtychoPINNError(Exception):
    """Base class for errors a user can act on."""


class DataError(PtychoPINNError, ValueError):
    """A dataset file or array is malformed (names the file, key and problem)."""


class ConfigError(PtychoPINNError, ValueError):
    """An invalid combination of settings."""


class BundleError(PtychoPINNError):
    """A model bundle is missing files, has a newer format or is corrupt."""


class DependencyError(PtychoPINNError, ImportError):
    """An optional dependency is missing or cannot be imported."""


class TrainingDivergedError(PtychoPINNError, RuntimeError):
    """The loss became NaN/Inf; the last good checkpoint was kept."""
