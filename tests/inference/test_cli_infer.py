"""``ptychopinn infer``: bad input exits 2 with one line and no output; happy path writes files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_helpers import StandInModel, make_dataset

import ptychopinn.inference.reconstruct as rec_mod
from ptychopinn.cli.main import main
from ptychopinn.inference.predict import InferenceModel


def _run(capsys, argv):
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.err


def test_missing_model_dir(tmp_path, capsys):
    data = tmp_path / "d.npz"
    make_dataset(m=8).save(data)
    out = tmp_path / "out"
    rc, err = _run(capsys, ["infer", "--model", str(tmp_path / "nope"), "--data", str(data), "-o", str(out)])
    assert rc == 2 and "model bundle directory not found" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("case", ["missing_file", "missing_key", "nan"])
def test_bad_data(tmp_path, capsys, case):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    data = tmp_path / "d.npz"
    if case != "missing_file":
        arrays = make_dataset(m=8).to_arrays()
        if case == "missing_key":
            del arrays["diff3d"]
        else:
            arrays["diff3d"][0, 0, 0] = np.nan
        np.savez(data, **arrays)
    out = tmp_path / "out"
    rc, err = _run(capsys, ["infer", "--model", str(run_dir), "--data", str(data), "-o", str(out)])
    assert rc == 2 and str(data) in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("extra", [["--batch-size", "0"], ["--stitch-crop", "0"]])
def test_bad_options(tmp_path, capsys, extra):
    data = tmp_path / "d.npz"
    make_dataset(m=8).save(data)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as ei:  # refused while parsing the command line
        main(["infer", "--model", str(tmp_path), "--data", str(data), "-o", str(out), *extra])
    err = capsys.readouterr().err
    assert ei.value.code == 2 and len(err.strip().splitlines()) == 1 and f"argument {extra[0]}" in err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_unavailable(tmp_path, capsys):
    data = tmp_path / "d.npz"
    make_dataset(m=8).save(data)
    out = tmp_path / "out"
    rc, err = _run(capsys, ["infer", "--model", str(tmp_path), "--data", str(data), "-o", str(out),
                            "--device", "cuda"])
    assert rc == 2 and "CUDA" in err and not out.exists()


def test_stitch_crop_larger_than_patch(tmp_path, capsys, monkeypatch):
    _patch_bundle_loader(monkeypatch)
    data = tmp_path / "d.npz"
    make_dataset(m=8).save(data)
    out = tmp_path / "out"
    rc, err = _run(capsys, ["infer", "--model", str(tmp_path), "--data", str(data), "-o", str(out),
                            "--stitch-crop", "17", "--device", "cpu"])
    assert rc == 2 and "stitch crop" in err and not out.exists()


def _patch_bundle_loader(monkeypatch):
    """Stand in for load_bundle (the CLI path is tested independently of the trained model)."""
    def fake_resolve(model, device="auto"):
        return InferenceModel(module=StandInModel(16), N=16, gridsize=1, kind="pinn", neighbor_count=7,
                              device=torch.device("cpu"), source=str(model))
    monkeypatch.setattr(rec_mod, "resolve_model", fake_resolve)


def test_happy_path(tmp_path, capsys, monkeypatch):
    _patch_bundle_loader(monkeypatch)
    data = tmp_path / "d.npz"
    make_dataset(m=20).save(data)
    out = tmp_path / "out"
    rc = main(["infer", "--model", str(tmp_path), "--data", str(data), "-o", str(out), "--device", "cpu",
               "--batch-size", "6", "--no-progress"])
    assert rc == 0
    assert "20 patterns" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"reconstruction.npz", "amplitude.png", "phase.png", "run_config.json"}
