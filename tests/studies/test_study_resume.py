"""A study killed with SIGKILL resumes to byte-identical files; local processes and a Dask
LocalCluster produce the same manifest as the in-process run."""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ptychopinn
from ptychopinn.studies.dose_response import PRESETS, run_dose_response
from ptychopinn.studies.runner import MANIFEST_FILE, comparable_outputs

pytestmark = pytest.mark.slow


def _files(root: Path) -> dict[str, bytes]:
    """Every file of a study except the run-specific manifest and each job's volatile files."""
    m = json.loads((root / MANIFEST_FILE).read_text())
    vol = [f"{jid}/{pat}" for jid, e in m["jobs"].items() for pat in e.get("volatile", [])]
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in (MANIFEST_FILE, ".study.lock")
            and not any(fnmatch.fnmatch(p.relative_to(root).as_posix(), v) for v in vol)}


def _same_study(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    differ = [k for k in fa if fa[k] != fb[k]]
    assert differ == [], differ
    ma, mb = (json.loads((r / MANIFEST_FILE).read_text()) for r in (a, b))
    assert comparable_outputs(ma) == comparable_outputs(mb)
    for jid, e in ma["jobs"].items():  # same configs, same input hashes
        assert (mb["jobs"][jid]["config"], mb["jobs"][jid]["inputs"]) == (e["config"], e["inputs"])


def test_sigkill_mid_study_then_resume_gives_byte_identical_files(dose_response_quick, tmp_path):
    ref, _ = dose_response_quick
    root = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(ptychopinn.__file__).resolve().parents[1]),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ptychopinn", "study", "dose-response", "-o", str(root),
                             "--preset", "quick", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done_before: list[str] = []
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            try:
                m = json.loads((root / MANIFEST_FILE).read_text())
            except (OSError, json.JSONDecodeError):
                m = {"jobs": {}}
            done_before = [j for j, e in m["jobs"].items() if e.get("status") == "done"]
            if "high_nll" in done_before:  # the first model is trained: kill in the middle
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the study finished before it could be killed"
    total = len(json.loads((ref / MANIFEST_FILE).read_text())["jobs"])
    m = json.loads((root / MANIFEST_FILE).read_text())
    finished = [j for j, e in m["jobs"].items() if e.get("status") == "done"]
    assert 0 < len(finished) < total
    mtimes = {p: p.stat().st_mtime_ns for j in finished for p in (root / j).rglob("*") if p.is_file()}
    res = run_dose_response(root, PRESETS["quick"], progress=False, log=lambda s: None, threads=1)
    assert res.ok
    assert sorted(res.skipped) == sorted(finished)  # resumed where it stopped
    assert len(res.ran) == total - len(finished)
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())  # finished jobs untouched
    assert [p.name for p in root.rglob(".*")] == [".study.lock"]  # no temporary leftovers
    _same_study(ref, root)


def test_local_processes_give_the_same_study(dose_response_quick, tmp_path):
    ref, _ = dose_response_quick
    res = run_dose_response(tmp_path / "pool", PRESETS["quick"], n_jobs=2, progress=False, log=lambda s: None, threads=1)
    assert res.ok
    assert {e["executor"] for e in res.manifest["jobs"].values()} == {"local processes (2)"}
    _same_study(ref, tmp_path / "pool")


def test_dask_localcluster_gives_the_same_manifest(dose_response_quick, tmp_path):
    distributed = pytest.importorskip(
        "distributed", reason="Dask distributed is not installed (pip install 'ptychopinn[cluster]')")
    ref, _ = dose_response_quick
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  resources={"GPU": 1}) as cluster, distributed.Client(cluster) as client:
        worker_pids = set(client.run(os.getpid).values())
        # the address, as --scheduler tcp://HOST:PORT passes it (the runner opens its own client)
        res = run_dose_response(tmp_path / "dask", PRESETS["quick"], scheduler=cluster.scheduler_address,
                                progress=False, log=lambda s: None, threads=1)
    assert res.ok
    jobs = res.manifest["jobs"]
    assert {e["pid"] for e in jobs.values()} <= worker_pids  # every job ran on a worker
    assert len(worker_pids) == 2
    # GPU jobs (training, inference) asked for the worker resource; the others did not
    assert jobs["high_nll"]["resources"] == {"GPU": 1} and jobs["infer/low_mae"]["resources"] == {"GPU": 1}
    assert jobs["data/high"]["resources"] == {} and jobs["summary"]["resources"] == {}
    _same_study(ref, tmp_path / "dask")
