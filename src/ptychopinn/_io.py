"""Small I/O helpers: atomic writes so no command ever leaves a half-written file.

Temporary names carry the writer's process id (``.NAME.PID.XXXXXXXX.tmp...``), so a later run into
the same place can recognise what a killed process left behind and remove it
(:func:`clean_stale_temps`)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    clean_stale_temps(path.parent, name=path.name)  # what a killed writer of this file left
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o644)  # mkstemp creates 0600; outputs are ordinary readable files
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def save_npz_atomic(path: str | os.PathLike, compress: bool = False, **arrays: Any) -> Path:
    """``np.savez`` (``np.savez_compressed`` with ``compress``) to a temporary file, then rename
    (no partial output)."""
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        (np.savez_compressed if compress else np.savez)(fh, **arrays)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")  # read back by read_text as UTF-8
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, default=jsonable) + "\n")


def read_text(path: str | os.PathLike, what: str = "file", *, error: type[Exception] | None = None) -> str:
    """The UTF-8 text of a file; a missing, unreadable or non-UTF-8 file raises ``error``
    (default :class:`~ptychopinn.errors.DataError`) with one line naming the file and the problem."""
    from ptychopinn.errors import DataError, one_line

    err = error or DataError
    p = Path(path)
    try:
        return p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise err(f"{p}: {what} not found") from None
    except OSError as exc:
        raise err(f"{p}: cannot read {what} ({exc.strerror or one_line(exc)})") from None
    except UnicodeDecodeError as exc:
        raise err(f"{p}: not UTF-8 text (byte {exc.start}; {what})") from None


def parse_json(text: str, where: str | os.PathLike, what: str = "JSON file", *,
               error: type[Exception] | None = None, expect: type | None = None) -> Any:
    """``json.loads(text)``; invalid JSON (or, with ``expect``, a document that is not a ``dict`` /
    ``list``) raises ``error`` (default DataError) as ``"WHERE: not JSON (line L, column C: why;
    WHAT)"`` / ``"WHERE: must hold a JSON object; got list"``."""
    from ptychopinn.errors import DataError

    err = error or DataError
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise err(f"{where}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}; {what})") from None
    if expect is not None and not isinstance(doc, expect):
        kind = {dict: "object", list: "list"}.get(expect, expect.__name__)
        raise err(f"{where}: must hold a JSON {kind}; got {type(doc).__name__}")
    return doc


def read_json(path: str | os.PathLike, what: str = "JSON file", *, error: type[Exception] | None = None,
              expect: type | None = None) -> Any:
    """The one JSON file reader: :func:`read_text` then :func:`parse_json`; every failure is one
    ``error`` (default DataError; a bundle passes BundleError, a config ConfigError) whose one-line
    message starts with the path."""
    return parse_json(read_text(path, what, error=error), Path(path), what, error=error, expect=expect)


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks; an unreadable file is a DataError naming it."""
    from ptychopinn.errors import DataError

    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(chunk_size), b""):
                h.update(block)
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    return h.hexdigest()


NONFINITE = ("null", "string", "keep")


def to_plain(obj: Any, *, max_list: int | None = None, nonfinite: str = "null") -> Any:
    """The one JSON sanitiser: a copy of ``obj`` made of JSON types only.

    numpy scalars and arrays become Python values and lists (arrays larger than ``max_list``
    elements ``{"array_shape", "array_dtype"}``), tensors arrays, complex numbers
    ``{"real", "imag"}``, paths strings, dataclasses dicts, sets sorted lists; anything else its
    ``str``. Non-finite floats become ``None`` (``nonfinite="null"``, strict JSON), the strings
    ``"nan"``, ``"inf"``, ``"-inf"`` (``"string"``: comparison.json) or stay floats (``"keep"``:
    written as ``NaN``/``Infinity``, read back by Python's json, as a config file needs)."""
    if nonfinite not in NONFINITE:
        raise ValueError(f"nonfinite must be one of {NONFINITE}; got {nonfinite!r}")
    kw = {"max_list": max_list, "nonfinite": nonfinite}
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.generic) and not isinstance(obj, np.void):
        obj = obj.item()
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) or nonfinite == "keep" else _nonfinite(obj, nonfinite)
    if isinstance(obj, complex):
        return {"real": to_plain(obj.real, **kw), "imag": to_plain(obj.imag, **kw)}
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_plain(obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj), **kw)
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v, **kw) for k, v in obj.items()}
    if hasattr(obj, "detach") and hasattr(obj, "numpy"):  # a torch tensor
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        if max_list is not None and obj.ndim and obj.size > max_list:
            return {"array_shape": list(obj.shape), "array_dtype": str(obj.dtype)}
        return to_plain(obj.tolist(), **kw)
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, **kw) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((to_plain(v, **kw) for v in obj), key=repr)
    return str(obj)


def _nonfinite(v: float, mode: str) -> str | None:
    if mode == "null":
        return None
    return "nan" if math.isnan(v) else "inf" if v > 0 else "-inf"


def jsonable(o: Any) -> Any:
    """``json.dumps(default=...)`` hook: :func:`to_plain` of an object JSON cannot write."""
    return to_plain(o)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]{8}\.tmp(\..*)?$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: the process exists
        return True
    return True


def clean_stale_temps(directory: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temporary files / staging folders in ``directory`` whose writing process is
    gone (a killed run), only those of target ``name`` if given; return what was removed.
    Entries of live processes are left alone."""
    d = Path(directory)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(d))
    except OSError:
        return removed
    for e in entries:
        m = _TEMP_RE.match(e.name)
        if not m or (name is not None and m.group("name") != name) or _pid_alive(int(m.group("pid"))):
            continue
        try:
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path)
            else:
                os.unlink(e.path)
            removed.append(Path(e.path))
        except OSError:
            pass
    return removed


def is_empty_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a directory holding nothing but stale temporaries (cleaned here)."""
    p = Path(path)
    clean_stale_temps(p)
    with os.scandir(p) as it:
        return next(it, None) is None


@contextlib.contextmanager
def staged_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory's contents in a staging folder next to ``path`` and move them into place
    only when the block succeeds (on failure nothing of it appears at ``path``).

    Into a missing or empty ``path`` the folder is renamed as a whole. Into a non-empty one
    (the caller decided that overwriting is allowed) each staged entry replaces the entry of
    the same name; other entries are kept. Staging folders of killed runs are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path.parent)
    if path.is_dir():
        clean_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700
        if not path.exists() or is_empty_dir(path):
            os.replace(tmp, path)  # rename(2) replaces an empty directory
            return
        for entry in sorted(tmp.iterdir()):
            dest = path / entry.name
            old = None
            if dest.is_dir() and not dest.is_symlink():
                old = dest.with_name(f"{_temp_prefix(dest)}{os.urandom(4).hex()}.tmp")
                os.replace(dest, old)
            os.replace(entry, dest)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------
# the output rule: an existing file / non-empty directory is refused unless overwrite (or resume /
# append); a parent that is a file, the wrong kind and unwritable places too, before any work
# ---------------------------------------------------------------------------------------------
def _probe_writable(directory: Path) -> str | None:
    """None if a file can be created in ``directory``, else the reason."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def check_output(path: str | os.PathLike | None, kind: str, *, overwrite: bool = False, resume: bool = False,
                 option: str = "-o/--output", append: bool = False) -> Path | None:
    """Refuse an output path that cannot or must not be written, before any work starts.

    ``kind`` is 'file' or 'dir'. An existing file / non-empty directory is refused unless
    ``overwrite`` (or ``resume`` for a training run, or ``append`` for a file the command extends,
    such as a telemetry JSON). Returns the path, or None when ``path`` is None."""
    from ptychopinn.errors import ConfigError

    if path is None:
        return None
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir'; got {kind!r}")
    text = os.fspath(path)
    if not str(text).strip():
        raise ConfigError(f"{option}: empty path")
    p = Path(text)
    full = Path(os.path.abspath(p))
    # the deepest part of the path that exists must be a directory we can write into
    base = full
    while not os.path.lexists(base):
        base = base.parent
    if base != full:
        if not base.is_dir():
            raise ConfigError(f"{option} {text}: {base} is a file, not a directory")
        where = base
    elif kind == "file":
        if full.is_dir():
            raise ConfigError(f"{option} {text}: is a directory, expected a file path")
        if not full.parent.is_dir():  # pragma: no cover - covered by the walk above
            raise ConfigError(f"{option} {text}: {full.parent} is not a directory")
        if not (overwrite or append):
            raise ConfigError(f"{option} {text}: already exists; pass --overwrite to replace it")
        where = full.parent
    else:
        if not full.is_dir():
            raise ConfigError(f"{option} {text}: exists and is not a directory")
        if not (overwrite or resume) and not is_empty_dir(full):
            raise ConfigError(f"{option} {text}: directory exists and is not empty; pass --overwrite to "
                              "write into it (files of the same name are replaced) or choose another directory")
        where = full
    reason = _probe_writable(where)
    if reason is not None:
        raise ConfigError(f"{option} {text}: cannot write in {where} ({reason})")
    # temporaries a killed run left here (next to the file, or in / next to the directory)
    clean_stale_temps(full.parent if full.parent.is_dir() else where)
    if kind == "dir" and full.is_dir():
        clean_stale_temps(full)
    return p
