"""The studies' library entry points a Python user calls instead of ``ptychopinn study``: settings
from a preset plus overrides, the loss guardrail on file paths, what the jobs left behind."""

from __future__ import annotations

import hashlib
import json

import pytest

from ptychopinn.errors import ConfigError
from ptychopinn.studies import dose_overlap, dose_response
from ptychopinn.studies.runner import Job


def test_preset_config_overrides_only_the_given_fields():
    cfg = dose_response.preset_config("quick", epochs=3, seed=None)
    # the quick preset's sizes (as written in dose_response.PRESETS), epochs replaced, seed (None) kept
    assert (cfg.N, cfg.object_size, cfg.n_train, cfg.n_test, cfg.epochs, cfg.seed) == (32, 80, 64, 32, 3, 0)
    assert dose_response.preset_config().epochs == 50
    cfg = dose_overlap.preset_config("quick", object_from="o.npz", probe_from="p.npz", doses=[1e4, 1e6])
    assert (cfg.object_from, cfg.probe_from, cfg.doses, cfg.tile, cfg.N) == ("o.npz", "p.npz", (1e4, 1e6), 6, 32)
    with pytest.raises(ConfigError, match="unknown preset 'tiny'"):
        dose_response.preset_config("tiny")
    with pytest.raises(ConfigError, match="no_such_field"):
        dose_response.preset_config("quick", no_such_field=1)


def test_check_loss_reads_manifest_paths(tmp_path):
    def manifest(name, loss):
        (tmp_path / name).write_text(json.dumps({"jobs": [{"id": "train/p1e3/pinn", "dose": 1e3, "view": "full",
                                                           "gridsize": 1, "final_loss": loss}]}))
        return tmp_path / name

    ref = manifest("ref.json", 2.0)
    assert dose_overlap.check_loss(ref, manifest("ok.json", 2.09), 0.05) == []
    assert len(dose_overlap.check_loss(str(ref), str(manifest("bad.json", 2.2)), 0.05)) == 1
    (tmp_path / "nojobs.json").write_text("{}")
    with pytest.raises(ConfigError, match="nojobs.json: key 'jobs'"):
        dose_overlap.check_loss(ref, tmp_path / "nojobs.json")


def test_job_outcomes(tmp_path):
    (tmp_path / "train/p1e3/pinn").mkdir(parents=True)
    (tmp_path / "train/p1e3/pinn/model.safetensors").write_bytes(b"weights")
    (tmp_path / "views/p1e3").mkdir(parents=True)
    (tmp_path / "views/p1e3/status.json").write_text(json.dumps({"status": "skipped", "reason": "3 groups"}))
    jobs = [Job("train/p1e3/pinn", "m:f", {}), Job("views/p1e3", "m:f", {}), Job("summary", "m:f", {})]
    out = dose_overlap.job_outcomes(tmp_path, jobs)
    assert out == {"train/p1e3/pinn": {"bundle": tmp_path / "train/p1e3/pinn",
                                       "bundle_sha256": hashlib.sha256(b"weights").hexdigest()},
                   "views/p1e3": {"skipped": "3 groups"}, "summary": {}}
