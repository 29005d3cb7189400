"""The one provenance helper of the telemetry files: time, git state, versions, seeds."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata as _md
from pathlib import Path
from typing import Any

import numpy as np


def utc_timestamp() -> str:
    """Current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git(args: Sequence[str], cwd: Path) -> str | None:
    try:
        r = subprocess.run(["git", *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def git_info(repo_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{commit_hash, branch, dirty}`` of the git checkout holding ``repo_dir`` (default: the
    installed ptychopinn sources); ``'unknown'`` / ``None`` outside a checkout."""
    d = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parent
    sha = _git(["rev-parse", "HEAD"], d) if d.is_dir() else None
    if not sha or not all(c in "0123456789abcdef" for c in sha):
        return {"commit_hash": "unknown", "branch": None, "dirty": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], d)
    return {"commit_hash": sha, "branch": _git(["rev-parse", "--abbrev-ref", "HEAD"], d) or None,
            "dirty": None if status is None else bool(status)}


def environment_versions() -> dict[str, str | None]:
    """Python, torch, numpy and ptychopinn versions (from package metadata; torch is not imported)."""
    from ptychopinn import __version__

    def version(dist: str) -> str | None:
        try:
            return _md.version(dist)
        except _md.PackageNotFoundError:
            return None

    return {"python_version": platform.python_version(), "torch_version": version("torch"),
            "numpy_version": np.__version__, "ptychopinn_version": version("ptychopinn") or __version__}


def seeds_from_metadata(meta: Mapping[str, Any] | None) -> dict[str, int | None]:
    """Seeds of a simulated dataset's ``_metadata``: ``object_seed``, ``sim_seed`` (the master
    ``seed``), plus ``scan_seed`` / ``noise_seed`` when present."""
    seeds = (meta or {}).get("seeds") or {}
    found = {"object_seed": seeds.get("object_seed"), "sim_seed": seeds.get("seed", seeds.get("sim_seed")),
             **{k: seeds[k] for k in ("scan_seed", "noise_seed") if k in seeds}}
    return {k: int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else None
            for k, v in found.items()}
