"""``ptychopinn parity-diff``: first divergent stage, tolerances, exit status."""

from __future__ import annotations

import json

import pytest
from telemetry_helpers import record_full

from ptychopinn.cli.main import main
from ptychopinn.errors import ConfigError
from ptychopinn.telemetry.diff import (
    DIFF_ORDER,
    diff_telemetry,
    load_telemetry,
    parse_tolerances,
    rel_diff,
)


def _pair(tmp_path, **kw_b):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = record_full(tmp_path / "a" / "parity_telemetry.json")
    b = record_full(tmp_path / "b" / "parity_telemetry.json", **kw_b)
    return a, b


def test_identical_runs_exit_0(tmp_path, capsys):
    a, b = _pair(tmp_path)
    assert main(["parity-diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "all compared stages within tolerance" in out
    # one table per stage, in the documented order
    pos = [out.index(f"[{name}]") for name in DIFF_ORDER]
    assert pos == sorted(pos)
    assert "same input dataset" in out


def test_double_normalisation_names_grouped_X_full(tmp_path, capsys):
    a, b = _pair(tmp_path, norm_factor=2.0, downstream=1.3)
    out_json = tmp_path / "diff.json"
    assert main(["parity-diff", str(a), str(b), "--json", str(out_json)]) == 1
    out = capsys.readouterr().out
    assert "FIRST DIVERGENT STAGE: grouped_X_full" in out
    res = json.loads(out_json.read_text())
    status = {s["name"]: s["status"] for s in res["stages"]}
    assert res["first_divergent"] == "grouped_X_full" and res["ok"] is False
    assert status["probe"] == status["raw_diffraction"] == status["grouped_diffraction"] == "ok"
    for name in ("grouped_X_full", "intensity_scale", "container_X", "inference_prediction"):
        assert status[name] == "DIVERGED", name
    gx = next(s for s in res["stages"] if s["name"] == "grouped_X_full")
    mean_row = next(r for r in gx["rows"] if r["quantity"] == "mean")
    assert mean_row["b"] == pytest.approx(2 * mean_row["a"], rel=1e-9)
    assert mean_row["rel"] == pytest.approx(0.5)


def test_raw_half_percent_within_tolerance_two_percent_not(tmp_path, capsys):
    a, b = _pair(tmp_path, raw_factor=1.005)
    assert main(["parity-diff", str(a), str(b)]) == 0
    doc_a, doc_b = load_telemetry(a), load_telemetry(b)
    raw = next(s for s in diff_telemetry(doc_a, doc_b).stages if s.name == "raw_diffraction")
    assert raw.status == "ok"
    assert next(r for r in raw.rows if r.quantity == "mean").rel == pytest.approx(0.005 / 1.005, rel=1e-4)
    res = diff_telemetry(doc_a, doc_b, {"raw_diffraction": 0.001})
    assert res.first_divergent == "raw_diffraction"
    b2 = record_full(tmp_path / "c.json", raw_factor=1.02)
    capsys.readouterr()
    assert main(["parity-diff", str(a), str(b2)]) == 1
    assert "FIRST DIVERGENT STAGE: raw_diffraction" in capsys.readouterr().out


def test_missing_stage_reported_and_optionally_fatal(tmp_path, capsys):
    a, b = _pair(tmp_path)
    doc = json.loads(b.read_text())
    doc["intensity_stages"] = [s for s in doc["intensity_stages"] if s["name"] != "container_X"]
    b.write_text(json.dumps(doc))
    assert main(["parity-diff", str(a), str(b)]) == 0
    assert "missing in one file (not compared): container_X" in capsys.readouterr().out
    assert main(["parity-diff", str(a), str(b), "--require-all"]) == 1


@pytest.mark.parametrize("content", ["{not json", json.dumps([1, 2]), json.dumps({"schema_version": "1.0"})])
def test_invalid_file_exit_2_one_line(tmp_path, capsys, content):
    a = record_full(tmp_path / "a.json")
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["parity-diff", str(a), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.json" in err and "Traceback" not in err


def test_unreadable_file_exit_2(tmp_path, capsys):
    a = record_full(tmp_path / "a.json")
    assert main(["parity-diff", str(a), str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_parse_tolerances_and_rel_diff():
    assert parse_tolerances(["grouped_X_full=0.02", "probe=0.5%"]) == {"grouped_X_full": 0.02, "probe": 0.005}
    with pytest.raises(ConfigError):
        parse_tolerances(["nonsense=1"])
    with pytest.raises(ConfigError):
        parse_tolerances(["probe=abc"])
    assert rel_diff(1.0, 1.01) == pytest.approx(0.01 / 1.01)
    assert rel_diff(0.0, 0.0) == 0.0
    assert rel_diff(0.0, 1e-9, floor=1e-3) == pytest.approx(1e-6)
    assert rel_diff(None, 1.0) is None


def test_comparison_block_final_mae_and_pearson_r_are_compared(tmp_path, capsys):
    a, b = _pair(tmp_path)
    doc = json.loads(b.read_text())
    mae = doc["comparison"]["amplitude"]["mae"]
    doc["comparison"]["amplitude"]["mae"] = mae * 1.04  # 4 % < 5 %: within tolerance
    b.write_text(json.dumps(doc))
    res = diff_telemetry(load_telemetry(a), load_telemetry(b))
    cmp = next(s for s in res.stages if s.name == "comparison")
    assert cmp.status == "ok" and res.ok()
    row = next(r for r in cmp.rows if r.quantity == "amplitude.mae")
    assert row.rel == pytest.approx(0.04 / 1.04)
    doc["comparison"]["amplitude"]["mae"] = mae * 1.2
    r0 = doc["comparison"]["amplitude"]["pearson_r"]
    doc["comparison"]["amplitude"]["pearson_r"] = r0 - 0.1  # r compared by its absolute difference
    b.write_text(json.dumps(doc))
    assert main(["parity-diff", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "FIRST DIVERGENT STAGE: comparison" in out
    res = diff_telemetry(load_telemetry(a), load_telemetry(b))
    rows = {r.quantity: r for r in next(s for s in res.stages if s.name == "comparison").rows}
    assert rows["amplitude.pearson_r"].rel == pytest.approx(0.1) and rows["amplitude.pearson_r"].status == "DIVERGED"
    assert rows["amplitude.mae"].status == "DIVERGED" and rows["phase.mae"].status == "ok"
