"""Typed exceptions. Every user-facing failure is one of these; the CLI turns them into a
one-line message and exit status 2 (no traceback)."""

from __future__ import annotations


class PtychoPINNError(Exception):
    """Base class for errors a user can act on."""


class DataError(PtychoPINNError, ValueError):
    """A dataset file or array is malformed (names the file, key and problem)."""


class ConfigError(PtychoPINNError, ValueError):
    """An invalid combination of settings."""


class MissingProbeError(DataError):
    """A dataset file holds no probe (a caller may supply one, e.g. a bundle's)."""


class ResumeMismatchError(ConfigError):
    """A checkpoint was written by a run with other settings or data, so it cannot be resumed."""


class BundleError(PtychoPINNError):
    """A model bundle is missing files, has a newer format or is corrupt."""


class DependencyError(PtychoPINNError, ImportError):
    """An optional dependency is missing or cannot be imported."""


class TrainingDivergedError(PtychoPINNError, RuntimeError):
    """The loss became NaN/Inf; the last good checkpoint was kept."""


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    """An exception's message as one readable line: the first non-empty line (torch and other
    libraries often add pages of advice), whitespace collapsed, cut to ``limit`` characters."""
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = " ".join(lines[0].split()) if lines else (exc.__class__.__name__ if isinstance(exc, BaseException) else "")
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."
