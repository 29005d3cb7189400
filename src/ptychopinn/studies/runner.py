"""Resumable study runner: a study is a list of :class:`Job`s with explicit inputs and dependencies.

Each job has a stable id (also its folder under the study root, e.g. ``high_nll`` or
``data/p1e4``), is run into a temporary sibling folder and renamed into place only when it
succeeds, and gets an entry in ``study_manifest.json``: its function and parameters (the config),
the SHA-256 of every input file, of every output file, the wall time and the status. Running the
study again skips every job whose entry still matches (same config, same input hashes, outputs
present with the recorded hashes), so a study killed at any point resumes where it stopped.

Job functions are named ``"module:function"`` (importable in any worker process) and called as
``fn(out_dir: Path, root: Path, params: dict, progress: bool)``; they write only into ``out_dir``
and read their inputs (paths relative to ``root``) from finished dependencies. Outputs must not
depend on wall time or on absolute paths, except the files a job lists in ``volatile`` (for
example a training bundle's ``config.json``, which records timings): the manifest still hashes
them, but they are not expected to be byte-identical between two runs.

Executors: ``run_study(..., jobs=1)`` runs in this process, one job after another; ``jobs=K``
runs up to K jobs at once in local worker processes; ``scheduler="tcp://HOST:PORT"`` (or a
``distributed.Client``) runs them on a Dask cluster (optional extra ``ptychopinn[cluster]``).
Jobs with ``gpu=True`` ask for one ``GPU`` worker resource when some worker advertises one
(start such workers with ``dask worker ... --resources GPU=1``); other jobs run anywhere.
The study root must be on a file system every worker sees.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import importlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptychopinn._io import read_json, sha256_file, write_json_atomic
from ptychopinn.errors import ConfigError, DependencyError, PtychoPINNError

MANIFEST_FILE = "study_manifest.json"
LOCK_FILE = ".study.lock"
MANIFEST_FORMAT = 1
CLUSTER_MISSING = ("Dask distributed is not installed: pip install -c constraints.txt 'ptychopinn[cluster]'")


@dataclass(frozen=True)
class Job:
    """One unit of work. ``inputs``: files it reads, relative to the study root (outputs of its
    ``deps``) or absolute (external files such as ``--object-from``); ``volatile``: glob patterns
    (relative to the job folder) of outputs that legitimately differ between runs."""

    id: str
    fn: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    deps: tuple[str, ...] = ()
    gpu: bool = False
    volatile: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        parts = self.id.split("/")
        if not self.id or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            raise ConfigError(f"job id {self.id!r}: must be a relative folder name without '.' parts")
        if ":" not in self.fn:
            raise ConfigError(f"job {self.id}: fn must be 'module:function'; got {self.fn!r}")
        json.dumps(self.params)  # parameters are part of the manifest: JSON only

    def config(self) -> dict[str, Any]:
        """What defines the job's result (compared on resume)."""
        return {"fn": self.fn, "params": self.params, "inputs": list(self.inputs), "deps": list(self.deps)}


# ---------------------------------------------------------------------------------------------
# manifest
# ---------------------------------------------------------------------------------------------
def load_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """The study manifest (an empty one when the study has not run yet)."""
    path = Path(root) / MANIFEST_FILE
    if not path.exists():
        return {"format": MANIFEST_FORMAT, "jobs": {}}
    try:
        m = read_json(path, "study manifest", error=ConfigError)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; delete it to rerun the study") from None
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT or not isinstance(m.get("jobs"), dict):
        raise ConfigError(f"{path}: not a study manifest of this ptychopinn version; delete it to rerun the study")
    return m


def _input_path(root: Path, rel: str) -> Path:
    p = Path(rel)
    return p if p.is_absolute() else root / p


def hash_inputs(root: Path, job: Job) -> dict[str, str]:
    out = {}
    for rel in job.inputs:
        p = _input_path(root, rel)
        if not p.is_file():
            raise ConfigError(f"job {job.id}: input {p} is missing")
        out[rel] = sha256_file(p)
    return out


def hash_outputs(folder: Path) -> dict[str, str]:
    """{relative path: SHA-256} of every file under ``folder`` (sorted)."""
    return {p.relative_to(folder).as_posix(): sha256_file(p)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def entry_matches(root: Path, job: Job, entry: dict[str, Any] | None, check_outputs: bool = True) -> bool:
    """True when ``entry`` records a finished run of this exact job on these exact inputs whose
    output files are all still present with the recorded hashes."""
    if not entry or entry.get("status") != "done" or entry.get("config") != job.config():
        return False
    try:
        if entry.get("inputs") != hash_inputs(root, job):
            return False
    except PtychoPINNError:
        return False
    if not check_outputs:
        return True
    folder = root / job.id
    if not folder.is_dir():
        return False
    try:
        return hash_outputs(folder) == entry.get("outputs")
    except PtychoPINNError:
        return False


# ---------------------------------------------------------------------------------------------
# executing one job (any process)
# ---------------------------------------------------------------------------------------------
def resolve_fn(name: str) -> Callable[..., Any]:
    mod, _, attr = name.partition(":")
    try:
        return getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"job function {name!r} cannot be imported ({exc})") from None


#: a job folder left by a killed run that holds this file is continued, not redone: a training
#: job's checkpoint (the trainer resumes it bit-identically when its settings and data match)
RESUMABLE = "checkpoint.pt"


def _partial_dir(final: Path) -> Path | None:
    """The newest folder a killed run left for ``final`` with a :data:`RESUMABLE` file (older
    ones are removed), or None."""
    found = sorted((d for d in final.parent.glob(f".{final.name}.*.tmp") if (d / RESUMABLE).is_file()),
                   key=lambda d: (d / RESUMABLE).stat().st_mtime)
    for old in found[:-1]:
        shutil.rmtree(old, ignore_errors=True)
    return found[-1] if found else None


def execute_job(job_dict: dict[str, Any], root: str, progress: bool = False, threads: int | None = None
                ) -> dict[str, Any]:
    """Run one job into a temporary folder, rename it onto ``root/<id>``, return its manifest entry.

    Takes and returns plain dicts so that it can be shipped to worker processes and Dask workers.
    ``threads``: torch's intra-op threads for the job (restored afterwards). Floating-point sums
    depend on it, so every executor runs a study's jobs with the same count to give the same bytes.
    """
    if threads:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(int(threads))
        try:
            return {**execute_job(job_dict, root, progress), "threads": int(threads)}
        finally:
            torch.set_num_threads(before)
    job = Job(**{**job_dict, "params": job_dict["params"], "inputs": tuple(job_dict["inputs"]),
                 "deps": tuple(job_dict["deps"]), "volatile": tuple(job_dict["volatile"])})
    rootp = Path(root)
    final = rootp / job.id
    final.parent.mkdir(parents=True, exist_ok=True)
    inputs = hash_inputs(rootp, job)
    started = time.time()
    t0 = time.perf_counter()
    partial = _partial_dir(final)
    tmp = partial or Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        fn = resolve_fn(job.fn)
        fn(tmp, rootp, dict(job.params), progress)
        os.chmod(tmp, 0o755)
        outputs = hash_outputs(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException as exc:
        if not (isinstance(exc, KeyboardInterrupt) and (tmp / RESUMABLE).is_file()):
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    wall = time.perf_counter() - t0
    return {
        "id": job.id, "status": "done", "config": job.config(), "inputs": inputs, "outputs": outputs,
        "volatile": list(job.volatile), "gpu": job.gpu, "wall_s": round(wall, 3),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(), "pid": os.getpid(),
    }


WATCHDOG_SECONDS = 2.0


def exit_with_parent(parent_pid: int, period: float = WATCHDOG_SECONDS) -> None:
    """In a worker process: a daemon thread that ends the process (exit status 3) once its parent
    ``parent_pid`` is gone, so killing a study (SIGTERM or SIGKILL) does not leave its workers
    training on; their job folders stay temporary and the next run removes them. One per process."""
    import threading

    name = f"ptychopinn-exit-with-{parent_pid}"
    if any(t.name == name for t in threading.enumerate()):
        return

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(period)
        os._exit(3)

    threading.Thread(target=watch, name=name, daemon=True).start()


def _execute_in_worker(job_dict: dict[str, Any], root: str, progress: bool, threads: int | None = None,
                       parent_pid: int | None = None) -> dict[str, Any]:
    """Entry point of local worker processes: typed errors travel back as (type, message)."""
    if parent_pid is not None:
        exit_with_parent(parent_pid)
    try:
        return execute_job(job_dict, root, progress, threads)
    except PtychoPINNError as exc:
        return {"id": job_dict["id"], "status": "failed", "error": f"{type(exc).__name__}: {exc}"}


# ---------------------------------------------------------------------------------------------
# the study
# ---------------------------------------------------------------------------------------------
def check_jobs(jobs: Sequence[Job]) -> list[Job]:
    """Unique ids, known dependencies, no cycles; returns the jobs in a dependency order."""
    by_id: dict[str, Job] = {}
    for j in jobs:
        if j.id in by_id:
            raise ConfigError(f"duplicate job id {j.id!r}")
        by_id[j.id] = j
    for j in jobs:
        for d in j.deps:
            if d not in by_id:
                raise ConfigError(f"job {j.id}: unknown dependency {d!r}")
    order: list[Job] = []
    state: dict[str, int] = {}

    def visit(j: Job) -> None:
        s = state.get(j.id)
        if s == 2:
            return
        if s == 1:
            raise ConfigError(f"dependency cycle through job {j.id!r}")
        state[j.id] = 1
        for d in j.deps:
            visit(by_id[d])
        state[j.id] = 2
        order.append(j)

    for j in jobs:
        visit(j)
    return order


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


@dataclass
class StudyResult:
    root: Path
    manifest: dict[str, Any]
    ran: list[str]
    skipped: list[str]
    failed: dict[str, str]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.failed


def run_study(
    jobs: Sequence[Job], root: str | os.PathLike, *, name: str = "study", n_jobs: int = 1,
    scheduler: Any = None, progress: bool = True, log: Callable[[str], None] | None = None,
    study_config: dict[str, Any] | None = None, threads: int | None = None,
) -> StudyResult:
    """Run (or resume) the jobs into ``root``; see the module docstring for the executors.

    ``threads``: torch threads of every job, whichever executor runs it (default: this process's
    current ``torch.get_num_threads()``), so that in-process, pool and Dask runs agree bit for bit.

    A failing job is recorded with status ``failed`` and its dependants are not started; the
    other jobs still run. Returns a :class:`StudyResult` (``ok`` is False when a job failed).
    """
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    order = check_jobs(jobs)
    if int(n_jobs) < 1:
        raise ConfigError(f"--jobs must be >= 1; got {n_jobs}")
    rootp = Path(root).resolve()
    rootp.mkdir(parents=True, exist_ok=True)
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    with _study_lock(rootp):
        return _run_locked(order, rootp, name, n_jobs, scheduler, progress, log, study_config, t0, int(threads))


@contextlib.contextmanager
def _study_lock(root: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``root/.study.lock`` (released by the kernel if the
    process dies), so that two runs never write one study directory at once."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        yield
        return
    with open(root / LOCK_FILE, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"{root}: another study run is using this directory (lock {LOCK_FILE})") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_locked(order: list[Job], rootp: Path, name: str, n_jobs: int, scheduler: Any, progress: bool,
                log: Callable[[str], None], study_config: dict[str, Any] | None, t0: float,
                threads: int) -> StudyResult:
    for stale in sorted(rootp.rglob(".*.tmp"), reverse=True):  # left by a killed run
        if stale.is_dir() and not (stale / RESUMABLE).is_file():  # a training checkpoint is kept to resume
            shutil.rmtree(stale, ignore_errors=True)
    for stale in rootp.glob(".*.tmp.*"):  # a half-copied published file
        stale.unlink(missing_ok=True)
    manifest = load_manifest(rootp)
    manifest.update({"format": MANIFEST_FORMAT, "study": name})
    if study_config is not None:
        manifest["study_config"] = study_config
    entries: dict[str, Any] = manifest["jobs"]

    skipped, _ = _plan(order, rootp, entries)
    done: set[str] = set(skipped)
    invalid = {j.id for j in order if j.id not in done}
    for jid in skipped:
        log(f"[{_stamp()}] skip  {jid} (finished earlier, inputs and outputs unchanged)")
    pending = [j for j in order if j.id in invalid]
    for j in pending:  # forget stale entries now, so a crash cannot leave them looking valid
        entries.pop(j.id, None)
    manifest["job_order"] = [j.id for j in order]
    write_json_atomic(rootp / MANIFEST_FILE, manifest)

    ran: list[str] = []
    failed: dict[str, str] = {}
    total = len(order)

    def record(entry: dict[str, Any]) -> None:
        jid = entry["id"]
        entries[jid] = entry
        write_json_atomic(rootp / MANIFEST_FILE, manifest)
        if entry["status"] == "done":
            done.add(jid)
            ran.append(jid)
            log(f"[{_stamp()}] done  {jid} ({entry['wall_s']:.1f} s) [{len(done)}/{total}]")
        else:
            failed[jid] = entry.get("error", "failed")
            log(f"[{_stamp()}] FAIL  {jid}: {failed[jid]}")

    if scheduler is not None:
        _run_dask(pending, rootp, scheduler, progress, log, record, done, failed, threads)
    elif int(n_jobs) == 1:
        for j in pending:
            if any(d in failed or d not in done for d in j.deps):
                record({"id": j.id, "status": "failed", "error": "a dependency failed"})
                continue
            log(f"[{_stamp()}] start {j.id}")
            try:
                entry = {**execute_job(dataclasses.asdict(j), str(rootp), progress, threads), "executor": "in-process"}
            except PtychoPINNError as exc:
                entry = {"id": j.id, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            record(entry)
    else:
        _run_pool(pending, rootp, int(n_jobs), progress, log, record, done, failed, threads)
    manifest["seconds_last_run"] = round(time.perf_counter() - t0, 3)
    write_json_atomic(rootp / MANIFEST_FILE, manifest)
    return StudyResult(rootp, manifest, ran, skipped, failed, time.perf_counter() - t0)


def _plan(order: list[Job], root: Path, entries: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(ids to reuse, ids to run): a job is reused only if its entry matches and all its
    dependencies are reused too."""
    reuse: list[str] = []
    run: list[str] = []
    for j in order:
        if all(d in reuse for d in j.deps) and entry_matches(root, j, entries.get(j.id)):
            reuse.append(j.id)
        else:
            run.append(j.id)
    return reuse, run


def plan_study(jobs: Sequence[Job], root: str | os.PathLike) -> tuple[list[str], list[str]]:
    """What :func:`run_study` would do, without doing it: (ids it would reuse, ids it would run)."""
    order = check_jobs(jobs)
    rootp = Path(root).resolve()
    entries = load_manifest(rootp)["jobs"] if rootp.is_dir() else {}
    return _plan(order, rootp, entries)


def _ready(pending: list[Job], done: set[str], failed: dict[str, str], started: set[str],
           record: Callable[[dict[str, Any]], None]) -> list[Job]:
    out = []
    for j in pending:
        if j.id in started or j.id in done or j.id in failed:
            continue
        if any(d in failed for d in j.deps):
            started.add(j.id)
            record({"id": j.id, "status": "failed", "error": "a dependency failed"})
        elif all(d in done for d in j.deps):
            out.append(j)
    return out


def _run_pool(pending: list[Job], root: Path, n_jobs: int, progress: bool, log: Callable[[str], None],
              record: Callable[[dict[str, Any]], None], done: set[str], failed: dict[str, str],
              threads: int | None = None) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    started: set[str] = set()
    running: dict[Any, str] = {}
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("spawn")) as ex:
        while True:
            for j in _ready(pending, done, failed, started, record):
                if len(running) >= n_jobs:
                    break
                started.add(j.id)
                log(f"[{_stamp()}] start {j.id}")
                running[ex.submit(_execute_in_worker, dataclasses.asdict(j), str(root), progress, threads,
                                  os.getpid())] = j.id
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                jid = running.pop(fut)
                try:
                    entry = fut.result()
                    entry["executor"] = f"local processes ({n_jobs})"
                    record(entry)
                except Exception as exc:  # noqa: BLE001 - a crashed worker fails that job only
                    record({"id": jid, "status": "failed", "error": f"{type(exc).__name__}: {exc}"})


def _gpu_workers(client: Any) -> bool:
    info = client.scheduler_info()
    return any(float((w.get("resources") or {}).get("GPU", 0)) > 0 for w in info.get("workers", {}).values())


def _run_dask(pending: list[Job], root: Path, scheduler: Any, progress: bool, log: Callable[[str], None],
              record: Callable[[dict[str, Any]], None], done: set[str], failed: dict[str, str],
              threads: int | None = None) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise DependencyError(CLUSTER_MISSING) from None
    own = not hasattr(scheduler, "submit")
    try:
        client = Client(scheduler, timeout="30s") if own else scheduler
    except OSError as exc:
        raise ConfigError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    try:
        gpu = _gpu_workers(client)
        if any(j.gpu for j in pending) and not gpu:
            log(f"[{_stamp()}] note: no Dask worker advertises a GPU resource; GPU jobs run on any worker")
        started: set[str] = set()
        running: dict[Any, str] = {}
        resources: dict[str, dict[str, int]] = {}
        ac = as_completed()
        while True:
            for j in _ready(pending, done, failed, started, record):
                started.add(j.id)
                log(f"[{_stamp()}] start {j.id}")
                kw = {"resources": {"GPU": 1}} if (j.gpu and gpu) else {}
                resources[j.id] = kw.get("resources", {})
                fut = client.submit(_execute_in_worker, dataclasses.asdict(j), str(root), progress, threads,
                                    key=f"ptychopinn-{j.id}-{time.time_ns()}", pure=False, **kw)
                running[fut] = j.id
                ac.add(fut)
            if not running:
                break
            fut = next(ac)
            jid = running.pop(fut)
            try:
                entry = fut.result()
                entry["executor"] = "dask"
                entry["resources"] = resources[jid]
                record(entry)
            except Exception as exc:  # noqa: BLE001 - a crashed worker fails that job only
                record({"id": jid, "status": "failed", "error": f"{type(exc).__name__}: {exc}"})
    finally:
        if own:
            client.close()


# ---------------------------------------------------------------------------------------------
# helpers for studies
# ---------------------------------------------------------------------------------------------
def comparable_outputs(manifest: dict[str, Any]) -> dict[str, dict[str, str]]:
    """{job id: {file: sha256}} without the volatile files: what two runs of one study must share."""
    out = {}
    for jid, e in manifest["jobs"].items():
        if e.get("status") != "done":
            continue
        pats = e.get("volatile", [])
        out[jid] = {f: h for f, h in e["outputs"].items() if not any(fnmatch.fnmatch(f, p) for p in pats)}
    return out


def publish(root: str | os.PathLike, job_id: str, names: Sequence[str]) -> list[Path]:
    """Copy files of a finished job to the study root (atomically; unchanged files untouched)."""
    from ptychopinn._io import atomic_path

    rootp = Path(root)
    out = []
    for n in names:
        src = rootp / job_id / n
        dst = rootp / Path(n).name
        if not src.is_file():
            continue
        if not (dst.is_file() and sha256_file(dst) == sha256_file(src)):
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
        out.append(dst)
    return out
