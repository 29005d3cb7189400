"""Observers: callers watch :func:`~ptychopinn.training.trainer.train` and
:func:`~ptychopinn.inference.reconstruct.reconstruct` without those importing the watcher.

An observer is any object with some of the methods ``setup``, ``batch``, ``epoch``, ``diverged``
and ``end``; each is called with keyword arguments only (what the loop has at that point; the
caller's docstring lists them). Missing methods are skipped, so an observer implements only what
it needs. :class:`Observer` is a no-op base class to subclass.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

EVENTS = ("setup", "batch", "epoch", "diverged", "end")


class Observer:
    """No-op observer: override the events you need (all take keyword arguments)."""

    def setup(self, **info: Any) -> None:
        """Before the first batch."""

    def batch(self, **info: Any) -> None:
        """After each batch is built (the very tensors the loop uses)."""

    def epoch(self, **info: Any) -> None:
        """After each epoch (training only)."""

    def diverged(self, **info: Any) -> None:
        """The loss became NaN/Inf; called just before the error is raised."""

    def end(self, **info: Any) -> None:
        """After the outputs are written."""


def notify(observers: Iterable[Any], event: str, **info: Any) -> None:
    """Call ``observer.<event>(**info)`` on every observer that has it."""
    for obs in observers:
        fn = getattr(obs, event, None)
        if fn is not None:
            fn(**info)
