"""Shared quick-preset study runs (each study runs once per test session)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "Run1084_recon3_postPC.npz"


@pytest.fixture(scope="session")
def dose_response_quick(tmp_path_factory):
    """The quick dose-response study, run in this process: (root, StudyResult)."""
    from ptychopinn.studies.dose_response import PRESETS, run_dose_response

    root = tmp_path_factory.mktemp("dose_response") / "study"
    res = run_dose_response(root, PRESETS["quick"], progress=False, log=lambda s: None, threads=1)
    assert res.ok, res.failed
    return root, res


@pytest.fixture(scope="session")
def dose_overlap_quick(tmp_path_factory):
    """The quick dose-overlap study on the shared Run1084 object and probe: (root, config, StudyResult)."""
    if not REAL.is_file():
        pytest.skip(f"shared data {REAL} not present (the dose-overlap study needs a real object and probe)")
    from ptychopinn.studies.dose_overlap import PRESETS, run_dose_overlap

    cfg = dataclasses.replace(PRESETS["quick"], object_from=str(REAL), probe_from=str(REAL))
    root = tmp_path_factory.mktemp("dose_overlap") / "study"
    res = run_dose_overlap(root, cfg, progress=False, log=lambda s: None, threads=1)
    assert res.ok, res.failed
    return root, cfg, res
