"""The study runner on toy jobs: order, manifest hashes, resume rules, failures, bad job lists."""

from __future__ import annotations

import hashlib
import json

import pytest

from ptychopinn.errors import ConfigError
from ptychopinn.studies.runner import MANIFEST_FILE, Job, check_jobs, run_study

ME = __name__


def toy_write(out, root, p, progress):
    (out / "value.txt").write_text(str(p["value"]))


def toy_sum(out, root, p, progress):
    total = sum(int((root / rel).read_text()) for rel in p["files"])
    (out / "sub").mkdir()
    (out / "sub" / "sum.txt").write_text(str(total))


def toy_fail(out, root, p, progress):
    (out / "partial.txt").write_text("half")
    raise ConfigError("toy failure")


def _jobs(a=1, b=2):
    return [
        Job("a", f"{ME}:toy_write", {"value": a}),
        Job("b", f"{ME}:toy_write", {"value": b}),
        Job("total", f"{ME}:toy_sum", {"files": ["a/value.txt", "b/value.txt"]},
            inputs=("a/value.txt", "b/value.txt"), deps=("a", "b")),
    ]


def _quiet(s):
    pass


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_runs_in_dependency_order_and_records_hashes(tmp_path):
    res = run_study(list(reversed(_jobs())), tmp_path, log=_quiet)
    assert res.ok and res.ran == ["a", "b", "total"] and res.skipped == []
    assert (tmp_path / "total" / "sub" / "sum.txt").read_text() == "3"
    m = json.loads((tmp_path / MANIFEST_FILE).read_text())
    e = m["jobs"]["total"]
    assert e["status"] == "done" and e["wall_s"] >= 0
    assert e["inputs"] == {"a/value.txt": _sha(tmp_path / "a" / "value.txt"),
                           "b/value.txt": _sha(tmp_path / "b" / "value.txt")}
    assert e["outputs"] == {"sub/sum.txt": hashlib.sha256(b"3").hexdigest()}
    assert e["config"]["params"] == {"files": ["a/value.txt", "b/value.txt"]}


def test_rerun_skips_unchanged_jobs_and_reruns_what_changed(tmp_path):
    run_study(_jobs(), tmp_path, log=_quiet)
    t0 = (tmp_path / "a" / "value.txt").stat().st_mtime_ns
    res = run_study(_jobs(), tmp_path, log=_quiet)
    assert res.ran == [] and res.skipped == ["a", "b", "total"]
    assert (tmp_path / "a" / "value.txt").stat().st_mtime_ns == t0
    res = run_study(_jobs(b=5), tmp_path, log=_quiet)  # new config for b: b and its dependant rerun
    assert res.ran == ["b", "total"] and res.skipped == ["a"]
    assert (tmp_path / "total" / "sub" / "sum.txt").read_text() == "6"
    (tmp_path / "a" / "value.txt").write_text("10")  # a tampered output: a reruns, then total
    res = run_study(_jobs(b=5), tmp_path, log=_quiet)
    assert res.ran == ["a", "total"] and (tmp_path / "total" / "sub" / "sum.txt").read_text() == "6"
    (tmp_path / "total" / "sub" / "sum.txt").unlink()  # a missing output
    assert run_study(_jobs(b=5), tmp_path, log=_quiet).ran == ["total"]


def test_a_failing_job_leaves_no_folder_and_stops_only_its_dependants(tmp_path):
    jobs = [Job("bad", f"{ME}:toy_fail"), Job("after", f"{ME}:toy_write", {"value": 1}, deps=("bad",)),
            Job("other", f"{ME}:toy_write", {"value": 2})]
    lines = []
    res = run_study(jobs, tmp_path, log=lines.append)
    assert not res.ok and res.ran == ["other"]
    assert res.failed == {"bad": "ConfigError: toy failure", "after": "a dependency failed"}
    assert not (tmp_path / "bad").exists() and [p.name for p in tmp_path.glob(".*")] == [".study.lock"]
    m = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert m["jobs"]["bad"]["status"] == "failed" and m["jobs"]["other"]["status"] == "done"
    assert any(line.endswith("start bad") for line in lines) and any("FAIL  bad" in line for line in lines)
    # fixing the job list resumes: 'other' is reused
    jobs[0] = Job("bad", f"{ME}:toy_write", {"value": 0})
    res = run_study(jobs, tmp_path, log=_quiet)
    assert res.ok and res.skipped == ["other"] and res.ran == ["bad", "after"]


def test_stale_temporary_folders_of_a_killed_run_are_removed(tmp_path):
    (tmp_path / ".a.x1y2.tmp").mkdir(parents=True)
    (tmp_path / ".a.x1y2.tmp" / "value.txt").write_text("half")
    run_study(_jobs(), tmp_path, log=_quiet)
    assert not (tmp_path / ".a.x1y2.tmp").exists()


@pytest.mark.parametrize("jobs, msg", [
    ([Job("a", f"{ME}:toy_write"), Job("a", f"{ME}:toy_write")], "duplicate job id 'a'"),
    ([Job("a", f"{ME}:toy_write", deps=("zz",))], "unknown dependency 'zz'"),
    ([Job("a", f"{ME}:toy_write", deps=("b",)), Job("b", f"{ME}:toy_write", deps=("a",))], "dependency cycle"),
])
def test_bad_job_lists_are_refused(jobs, msg):
    with pytest.raises(ConfigError, match=msg):
        check_jobs(jobs)


@pytest.mark.parametrize("jid", ["", "../x", "a/./b", ".hidden"])
def test_bad_job_ids_are_refused(jid):
    with pytest.raises(ConfigError, match="job id"):
        Job(jid, f"{ME}:toy_write")


def test_a_second_run_on_the_same_directory_is_refused(tmp_path):
    import fcntl

    run_study(_jobs(), tmp_path, log=_quiet)
    with open(tmp_path / ".study.lock", "a") as fh:  # flock: a second open file description conflicts
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ConfigError, match="another study run is using this directory"):
            run_study(_jobs(), tmp_path, log=_quiet)
    assert run_study(_jobs(), tmp_path, log=_quiet).skipped == ["a", "b", "total"]  # lock released


def test_a_worker_ends_when_its_parent_is_gone(tmp_path):
    """The watchdog of local workers: a process whose recorded parent is not its parent exits (3)
    within a few periods; one whose parent is alive keeps running."""
    import subprocess
    import sys
    import time

    code = ("import os, sys, time; from ptychopinn.studies.runner import exit_with_parent; "
            "exit_with_parent(int(sys.argv[1]), period=0.1); time.sleep(float(sys.argv[2])); sys.exit(0)")
    t = time.perf_counter()
    gone = subprocess.run([sys.executable, "-c", code, "1", "30"], timeout=60)  # pid 1 is not its parent
    assert gone.returncode == 3 and time.perf_counter() - t < 20
    alive = subprocess.run([sys.executable, "-c", code, str(__import__("os").getpid()), "0.5"], timeout=60)
    assert alive.returncode == 0
