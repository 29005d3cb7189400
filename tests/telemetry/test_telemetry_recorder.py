"""TelemetryRecorder: schema validity, extension across invocations, symmetry check."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
from telemetry_helpers import arrays, record_full

from ptychopinn.errors import ConfigError, DataError
from ptychopinn.telemetry.recorder import (
    REQUIRED_STAGES,
    TelemetryRecorder,
    load_schema,
    validate_telemetry,
)


def _strict_load(path):
    def bad(c):
        raise AssertionError(f"non-strict JSON constant {c}")
    return json.loads(path.read_text(), parse_constant=bad)


def _schema_validator():
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_full_pipeline_file_validates(tmp_path):
    path = record_full(tmp_path / "parity_telemetry.json")
    doc = _strict_load(path)
    _schema_validator().validate(doc)
    names = [s["name"] for s in doc["intensity_stages"]]
    assert [n for n in names if n in REQUIRED_STAGES] == list(REQUIRED_STAGES)
    assert doc["schema_version"] == "1.0" and doc["pipeline"] == "ptychopinn" and doc["scenario"] == "unit"
    assert doc["symmetry_check"]["violated"] is False
    assert doc["symmetry_check"]["actual"] == pytest.approx(doc["full_chain_product"], rel=1e-9)
    env = doc["provenance"]["environment"]
    assert env["torch_version"] and env["numpy_version"] == np.__version__
    assert len(doc["provenance"]["dataset_source"]["checksum"]) == 64
    assert doc["intensity_scale"]["ratio_bundle_vs_model"] == pytest.approx(1.0)
    assert doc["intensity_scale"]["used_mode"] == "dataset_derived"


def test_extending_keeps_earlier_blocks(tmp_path):
    path = record_full(tmp_path / "t.json")
    doc = _strict_load(path)
    prov = doc["provenance"]
    assert [i["command"] for i in prov["invocations"]] == ["simulate", "train", "infer"]
    assert prov["seeds"] == {"object_seed": 1, "sim_seed": 2, "training_seed": 3}
    assert prov["dataset_source"]["type"] == "simulated"  # set by simulate, kept later
    assert doc["configuration"]["N"] == 16 and doc["configuration"]["gridsize"] == 2
    assert doc["probe"]["normalization"]["method"] == "normalise_probe_energy"
    assert doc["training"]["epochs_completed"] == 1 and doc["inference"]["group_limit"] == 30
    assert doc["comparison"]["amplitude"]["pearson_r"] > 0.9
    # replacing one stage keeps the others and the canonical order
    raw_before = doc["intensity_stages"][0]["stats"]["mean"]
    rec = TelemetryRecorder.open(path, command="train")
    rec.record_stage("container_X", np.ones((3, 4, 2, 2)), "again", gridsize=2)
    rec.write()
    doc2 = _strict_load(path)
    names = [s["name"] for s in doc2["intensity_stages"]]
    assert names.count("container_X") == 1 and names.index("container_X") == names.index("grouped_X_full") + 1
    assert doc2["intensity_stages"][0]["stats"]["mean"] == raw_before
    assert doc2["training"] == doc["training"]


def test_symmetry_check_flags_broken_chain(tmp_path):
    a = arrays()
    path = tmp_path / "broken.json"
    rec = TelemetryRecorder(path)
    s = a["s"]
    xn2 = a["groups"] / s / s  # normalisation applied twice
    rec.record_stage("raw_diffraction", a["x"], "raw")
    rec.record_stage("grouped_diffraction", a["groups"], "grouped")
    rec.record_stage("grouped_X_full", xn2, "normalised twice")
    rec.record_stage("container_X", xn2, "container")
    rec.record_stage("training_labels_Y_amp", xn2 * s, "labels = container * s")
    rec.set_intensity_scale(s, None, "dataset_derived", recorded_in_bundle=s)
    rec.write()
    doc = _strict_load(path)
    chk = doc["symmetry_check"]
    assert chk["violated"] is True
    assert chk["primary_deviation_source"] == "grouped_X_full"
    assert chk["actual"] == pytest.approx(1 / s, rel=0.05)


def test_schema_rejects_missing_required_block(tmp_path):
    doc = _strict_load(record_full(tmp_path / "t.json"))
    validator = _schema_validator()
    for key in ("provenance", "intensity_stages", "probe", "training"):
        bad = {k: v for k, v in doc.items() if k != key}
        assert not validator.is_valid(bad), key
        with pytest.raises(DataError, match="required property"):
            validate_telemetry(bad, where="x.json")
    bad_stage = json.loads(json.dumps(doc))
    del bad_stage["intensity_stages"][0]["stats"]["nan_count"]
    assert not validator.is_valid(bad_stage)


def test_recorder_rejects_bad_input(tmp_path):
    rec = TelemetryRecorder(tmp_path / "t.json")
    with pytest.raises(ConfigError, match="unknown stage"):
        rec.record_stage("grouped_X", np.ones(3), "x")
    with pytest.raises(ConfigError, match="used_mode"):
        rec.set_intensity_scale(1.0, 1.0, "median")
    with pytest.raises(ConfigError, match="unknown block"):
        rec.set_block("evaluation", {})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        TelemetryRecorder.open(tmp_path / "bad.json")
    (tmp_path / "v2.json").write_text(json.dumps({"schema_version": "2.0"}))
    with pytest.raises(DataError, match="schema_version"):
        TelemetryRecorder.open(tmp_path / "v2.json")


def test_minimal_file_and_nonfinite_written_as_null(tmp_path):
    path = tmp_path / "t.json"
    rec = TelemetryRecorder(path)
    rec.record_stage("inference_prediction", np.array([np.nan, np.nan]), "all NaN")
    rec.write()
    doc = _strict_load(path)
    _schema_validator().validate(doc)
    st = doc["intensity_stages"][0]["stats"]
    assert st["mean"] is None and st["nan_count"] == 2
    assert doc["probe"] is None and doc["training"] is None


def test_without_jsonschema_validation_is_skipped_with_note(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "jsonschema", None)  # import jsonschema -> ImportError
    rec = TelemetryRecorder(tmp_path / "t.json")
    rec.record_stage("raw_diffraction", np.ones((2, 3, 3)), "x")
    with pytest.warns(UserWarning, match="jsonschema is not installed"):
        rec.write()
    assert "not validated" in rec.validation_note
    assert _strict_load(tmp_path / "t.json")["intensity_stages"][0]["stats"]["mean"] == 1.0


def test_record_stage_torch_tensor(tmp_path):
    import torch

    rec = TelemetryRecorder(tmp_path / "t.json")
    e = rec.record_stage("container_X", torch.full((5, 4, 2, 2), 2.0), "tensor", gridsize=2)
    assert e["stats"]["mean"] == 2.0 and e["stats"]["dtype"] == "float32"
    assert e["metadata"] == {"count": 5, "gridsize": 2, "group_limit": None}


def test_intensity_scale_refresh_keeps_batch_mean(tmp_path):
    path = tmp_path / "t.json"
    rec = TelemetryRecorder(path)
    rec.set_intensity_scale(2.0, 2.1, "data", recorded_in_bundle=2.0, model_exp_log_scale=2.0,
                            batch_mean_sum_intensity=256.0, nphotons=282.24)
    rec.write()
    rec = TelemetryRecorder.open(path, command="infer")
    rec.set_intensity_scale_from({"data_derived": 2.0, "closed_form": 2.1, "used": "data", "value": 2.0},
                                 model_exp_log_scale=2.5, recorded_in_bundle=2.0)
    rec.write()
    blk = _strict_load(path)["intensity_scale"]
    assert blk["dataset_derived"]["batch_mean_sum_intensity"] == 256.0 and blk["fallback"]["nphotons"] == 282.24
    assert blk["delta_bundle_vs_model"] == pytest.approx(-0.5) and blk["ratio_bundle_vs_model"] == pytest.approx(0.8)
    assert blk["used_value"] == 2.0 and blk["fallback"]["computed_scale"] == 2.1
