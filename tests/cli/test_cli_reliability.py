"""Reliability promises (docs/reliability.md), one test per class of issue 12:

1. outputs are checked before any work (and one overwrite rule holds for every command);
2. multi-step commands (photon-grid, demo) are atomic as a whole; a killed run's temporaries
   are cleaned by the next run;
3. every numeric option is validated at parse time;
4. a corrupt or hand-edited bundle file is a BundleError naming the file and the field;
5. validate refuses what the other commands refuse;
6. resume fingerprints the labels of the supervised model, and NaN labels are refused;
7. data-dependent refusals name the file and key; quoted torch errors are one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ptychopinn
from ptychopinn.cli.main import main
from ptychopinn.data.simulate import simulate
from ptychopinn.errors import BundleError, ConfigError, DataError
from ptychopinn.model.config import ModelConfig
from ptychopinn.training.config import TrainConfig


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse refusals
        rc = exc.code
    return rc, capsys.readouterr().err


def _dead_pid() -> int:
    """A process id that is not running (for hand-made 'killed run' temporaries)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _tiny(n: int = 32, m: int = 48, size: int = 72, seed: int = 0):
    return simulate(n_images=m, N=n, object_size=size, nphotons=1e6, seed=seed)


def _tiny_train(**kw) -> TrainConfig:
    base = {"epochs": 1, "batch_size": 16, "device": "cpu", "patience": 0, "seed": 0, "precision": "float32"}
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("data") / "d.npz"
    _tiny().save(p)
    return p


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, data) -> Path:
    run = tmp_path_factory.mktemp("bundle") / "run"
    ptychopinn.train(data, run, ModelConfig(n_filters_scale=1), _tiny_train(), progress=False)
    return run


# ---------------------------------------------------------------------------------------------
# 1. outputs: checked before any work, one overwrite rule
# ---------------------------------------------------------------------------------------------
def _commands(data: Path, bundle: Path, out: str) -> dict[str, list[str]]:
    return {
        "simulate": ["simulate", "-o", f"{out}/x.npz", "--n-images", "8", "--N", "32", "--object-size", "64"],
        "train": ["train", "--train", str(data), "-o", out, "--epochs", "1"],
        "infer": ["infer", "--model", str(bundle), "--data", str(data), "-o", out],
        "compare": ["compare", "--data", str(data), "--recon", f"A={data}", "-o", out],
        "iterative": ["iterative", "--data", str(data), "-o", out],
        "photon-grid": ["photon-grid", "-o", out, "--doses", "1e4", "--n-images", "8", "--N", "32"],
        "demo": ["demo", "-o", out, "--epochs", "1"],
        "parity-log": ["parity-log", "--dataset-root", str(data.parent), "--output", out],
        "reconstruct": ["reconstruct", str(data), "-o", out, "--epochs", "1"],
    }


def test_outputs_checked_before_any_work_and_one_overwrite_rule(tmp_path, capsys, data, bundle, monkeypatch):
    """A parent that is a file, or an existing non-empty output without --overwrite, is refused
    with exit 2 before any data is read (the data loader is booby-trapped), for every command."""
    from ptychopinn.data import contract

    def trap(*a, **k):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(contract, "load_dataset", trap)
    monkeypatch.setattr(contract, "open_npz", trap)
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("user data")
    for name, argv in _commands(data, bundle, str(blocker / "out")).items():
        rc, err = _run(capsys, argv)
        assert rc == 2, (name, err)
        assert f"{blocker} is a file, not a directory" in err, (name, err)
        assert err.count("\n") == 1 and "Traceback" not in err, (name, err)
    for name, argv in _commands(data, bundle, str(full)).items():
        if name == "simulate":
            argv = [*argv[:2], str(full / "keep.txt"), *argv[3:]]
        rc, err = _run(capsys, argv)
        assert rc == 2 and "--overwrite" in err, (name, err)
    assert sorted(p.name for p in full.iterdir()) == ["keep.txt"]
    assert (full / "keep.txt").read_text() == "user data"
    # --overwrite lets simulate replace its file; train --resume continues in a non-empty run dir
    monkeypatch.undo()
    rc, err = _run(capsys, [*_commands(data, bundle, str(full))["simulate"][:2], str(full / "keep.txt"),
                            "--n-images", "8", "--N", "32", "--object-size", "64", "--overwrite"])
    assert rc == 0, err
    assert ptychopinn.load_dataset(full / "keep.txt").n_patterns == 8
    run = tmp_path / "run"
    shutil.copytree(bundle, run)
    rc, err = _run(capsys, ["train", "--train", str(data), "-o", str(run), "--epochs", "1", "--quiet",
                            "--n-filters-scale", "1", "--precision", "float32", "--patience", "0",
                            "--device", "cpu", "--resume"])
    assert rc == 0, err
    # the system failing mid-write (disk full): exit 3, one line, no temporary left behind
    def disk_full(fh, **arrays):
        fh.write(b"partial")
        raise OSError(28, "No space left on device", str(tmp_path / "full.npz"))

    monkeypatch.setattr(np, "savez", disk_full)
    rc, err = _run(capsys, ["simulate", "-o", str(tmp_path / "full.npz"), "--n-images", "8", "--N", "32",
                            "--object-size", "64"])
    assert rc == 3 and err.count("\n") == 1 and "No space left on device" in err, err
    assert not (tmp_path / "full.npz").exists() and not list(tmp_path.glob(".full.npz.*"))


# ---------------------------------------------------------------------------------------------
# 2. multi-step commands are atomic as a whole; killed runs' temporaries are cleaned
# ---------------------------------------------------------------------------------------------
def test_multi_step_outputs_are_atomic_and_stale_temporaries_cleaned(tmp_path, monkeypatch):
    import ptychopinn.data.simulate as sim_mod
    from ptychopinn.studies.demo import DemoConfig, run_demo
    from ptychopinn.studies.photon_grid import PhotonGridConfig, photon_grid

    real = sim_mod.simulate
    calls = []

    def fail_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise DataError("simulated failure at the second dose")
        return real(*a, **k)

    monkeypatch.setattr(sim_mod, "simulate", fail_second)
    root = tmp_path / "grid"
    cfg = PhotonGridConfig(doses=(1e4, 1e6), n_images=8, N=32, object_size=64)
    with pytest.raises(DataError, match="second dose"):
        photon_grid(cfg, root, progress=False)
    assert len(calls) == 2  # the first dose was written (to the staging folder) before the failure
    assert not root.exists() and list(tmp_path.iterdir()) == []

    # demo: bad settings are refused before the simulation; a failing step leaves nothing
    with pytest.raises(ConfigError, match="power of two"):
        run_demo(tmp_path / "demo", DemoConfig(N=48, epochs=1, ptychi=False), progress=False, log=lambda s: None)
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []
    import ptychopinn.training.trainer as trainer_mod

    monkeypatch.setattr(sim_mod, "simulate", real)
    monkeypatch.setattr(trainer_mod, "train", lambda *a, **k: (_ for _ in ()).throw(DataError("train failed")))
    with pytest.raises(DataError, match="train failed"):
        run_demo(tmp_path / "demo", DemoConfig(object_size=64, epochs=1, ptychi=False), progress=False,
                 log=lambda s: None)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    # a killed run's staging folder and temporary file are removed by the next run into the place
    pid = _dead_pid()
    stale_dir = tmp_path / f".grid.{pid}.abcd1234.tmp"
    stale_dir.mkdir()
    (stale_dir / "data_p1e4.npz").write_bytes(b"half")
    stale_file = tmp_path / f".x.npz.{pid}.abcd1234.tmp.npz"
    stale_file.write_bytes(b"half")
    live = tmp_path / f".y.npz.{os.getpid()}.abcd1234.tmp.npz"  # a live writer's file is kept
    live.write_bytes(b"in progress")
    m = photon_grid(PhotonGridConfig(doses=(1e4, 1e6), n_images=8, N=32, object_size=64), root, progress=False)
    assert not stale_dir.exists() and not stale_file.exists() and live.exists()
    assert sorted(p.name for p in root.iterdir()) == ["data_p1e4.npz", "data_p1e6.npz", "manifest.json",
                                                      "manifest.md"]
    assert [e["file"] for e in m["datasets"]] == ["data_p1e4.npz", "data_p1e6.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["grid", live.name])
    # a killed writer's temporary inside the root is removed by the next run into it
    stale_npz = root / f".data_p1e4.npz.{pid}.zz99zz99.tmp.npz"
    stale_npz.write_bytes(b"half")
    # into the non-empty root (the CLI asks for --overwrite): same-named entries replaced, others kept
    (root / "notes.txt").write_text("mine")
    m2 = photon_grid(PhotonGridConfig(doses=(1e4, 1e5), n_images=8, N=32, object_size=64), root, progress=False)
    assert not stale_npz.exists()
    assert sorted(p.name for p in root.iterdir()) == ["data_p1e4.npz", "data_p1e5.npz", "data_p1e6.npz",
                                                      "manifest.json", "manifest.md", "notes.txt"]
    assert json.loads((root / "manifest.json").read_text())["datasets"] == m2["datasets"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["grid", live.name])
    # any atomic write (library API included) removes what a killed writer of that same file left
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / f".d.npz.{pid}.ab12cd34.tmp.npz").write_bytes(b"half")
    (lone / f".other.npz.{pid}.ab12cd34.tmp.npz").write_bytes(b"half")  # another file's: not touched
    _tiny(m=4).save(lone / "d.npz")
    assert sorted(p.name for p in lone.iterdir()) == [f".other.npz.{pid}.ab12cd34.tmp.npz", "d.npz"]


# ---------------------------------------------------------------------------------------------
# 3. numeric options are validated at parse time
# ---------------------------------------------------------------------------------------------
_BAD_OPTIONS = [
    ("simulate", "--nphotons", "nan"), ("simulate", "--nphotons", "-5"), ("simulate", "--nphotons", "1e30"),
    ("simulate", "--seed", "-1"), ("simulate", "--noise-seed", "-3"), ("simulate", "--n-images", "0"),
    ("simulate", "--step", "inf"), ("simulate", "--border", "-1"), ("simulate", "--probe-defocus", "nan"),
    ("train", "--warmup-epochs", "nan"), ("train", "--warmup-epochs", "-1"), ("train", "--nll-weight", "-1"),
    ("train", "--mae-weight", "inf"), ("train", "--epochs", "0"), ("train", "--batch-size", "0"),
    ("train", "--lr", "0"), ("train", "--seed", "-2"), ("train", "--val-fraction", "1"),
    ("train", "--amp-max", "nan"), ("train", "--patience", "-1"), ("train", "--n-groups", "0"),
    ("infer", "--batch-size", "0"), ("infer", "--stitch-crop", "-4"),
    ("compare", "--upsample-factor", "0"), ("compare", "--rim", "-1"), ("compare", "--ms-ssim-sigma", "nan"),
    ("iterative", "--epochs", "0"), ("iterative", "--batch-size", "-1"), ("iterative", "--seed", "-1"),
    ("photon-grid", "--doses", "1e3,nan"), ("photon-grid", "--doses", "1e3,-1e4"), ("photon-grid", "--N", "0"),
    ("demo", "--epochs", "0"), ("demo", "--nphotons", "inf"), ("demo", "--N", "-32"),
    ("validate", "--nphotons", "0"), ("validate", "--intensity-scale", "nan"),
    ("reconstruct", "--grad-clip", "-1"), ("reconstruct", "--min-lr", "nan"),
]
_REQUIRED = {
    "simulate": ["-o", "x.npz"], "train": ["--train", "t.npz", "-o", "r"], "demo": ["-o", "d"],
    "infer": ["--model", "m", "--data", "d.npz", "-o", "o"], "iterative": ["--data", "d.npz", "-o", "o"],
    "compare": ["--data", "d.npz", "--recon", "A=a.npz", "-o", "o"], "photon-grid": ["-o", "g"],
    "validate": ["d.npz"],
    "reconstruct": ["d.npz", "-o", "o"],
}


@pytest.mark.parametrize("command,option,value", _BAD_OPTIONS)
def test_numeric_options_refused_at_parse_time(command, option, value, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, err = _run(capsys, [command, *_REQUIRED[command], f"{option}={value}"])
    assert rc == 2
    assert err.count("\n") == 1, err  # one line: no usage block, no traceback
    assert f"argument {option}:" in err and repr(value.split(",")[-1]) in err, err
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# 4. bundles
# ---------------------------------------------------------------------------------------------
def _edit_json(path: Path, fn) -> None:
    cfg = json.loads(path.read_text())
    fn(cfg)
    path.write_text(json.dumps(cfg))


_CORRUPTIONS = {
    "truncated probe": ("probe.npz", lambda r: (r / "probe.npz").write_bytes((r / "probe.npz").read_bytes()[:300]),
                        "probe.npz"),
    "probe of wrong size": ("probe.npz", lambda r: np.savez(r / "probe.npz", probe=np.ones((16, 16), np.complex64)),
                            "key 'probe'"),
    "N as text": ("config.json", lambda r: _edit_json(r / "config.json", lambda c: c["model"].update(N="32")),
                  "key 'model.N'"),
    "N not matching weights": ("model.safetensors", lambda r: (_edit_json(r / "config.json", lambda c: c["model"].update(
        N=64)), np.savez(r / "probe.npz", probe=np.ones((64, 64), np.complex64))), "key 'probe'"),
    "filters not matching weights": ("model.safetensors", lambda r: _edit_json(
        r / "config.json", lambda c: c["model"].update(n_filters_scale=2)), "n_filters_scale=2"),
    "intensity scale as text": ("config.json", lambda r: _edit_json(
        r / "config.json", lambda c: c["intensity_scale"].update(final="big", value="big")),
        "key 'intensity_scale.final'"),
    "training field wrong type": ("config.json", lambda r: _edit_json(
        r / "config.json", lambda c: c["training"].update(neighbor_count="seven")), "key 'training.neighbor_count'"),
    "section not an object": ("config.json", lambda r: _edit_json(r / "config.json", lambda c: c.update(probe=[])),
                              "key 'probe'"),
    "history not UTF-8": ("history.json", lambda r: (r / "history.json").write_bytes(b"\xff\xfe[1]"), "UTF-8"),
    "history not a list": ("history.json", lambda r: (r / "history.json").write_text("{}"), "JSON list"),
    "truncated weights": ("model.safetensors", lambda r: (r / "model.safetensors").write_bytes(
        (r / "model.safetensors").read_bytes()[:200]), "unreadable weights"),
}


def test_corrupt_bundle_files_are_bundle_errors_naming_file_and_field(bundle, tmp_path, capsys, data):
    for i, (case, (fname, corrupt, field)) in enumerate(_CORRUPTIONS.items()):
        run = tmp_path / f"b{i}"
        shutil.copytree(bundle, run)
        corrupt(run)
        with pytest.raises(BundleError) as ei:
            ptychopinn.load_bundle(run)
        msg = str(ei.value)
        assert str(run / fname) in msg and field in msg and "\n" not in msg, (case, msg)
        rc, err = _run(capsys, ["infer", "--model", str(run), "--data", str(data), "-o", str(tmp_path / f"o{i}")])
        assert rc == 2 and err.count("\n") == 1 and str(run / fname) in err, (case, err)
        assert not (tmp_path / f"o{i}").exists()


# ---------------------------------------------------------------------------------------------
# 5. validate refuses what the other commands refuse
# ---------------------------------------------------------------------------------------------
def test_validate_never_approves_data_refused_elsewhere(tmp_path, capsys, data):
    z = dict(np.load(data))
    cases = {
        "no patterns": ({k: (v[:0] if k in ("diff3d", "xcoords", "ycoords", "xcoords_start", "ycoords_start",
                                          "scan_index", "ground_truth_patches") else v) for k, v in z.items()},
                        "key 'diff3d'"),
        "all-zero patterns": ({**z, "diff3d": np.zeros_like(z["diff3d"])}, "key 'diff3d'"),
        "all-zero probe": ({**z, "probeGuess": np.zeros_like(z["probeGuess"])}, "key 'probeGuess'"),
        "string labels": ({**z, "ground_truth_patches": np.full(z["ground_truth_patches"].shape, "a")},
                          "key 'ground_truth_patches'"),
        "NaN labels": ({**z, "ground_truth_patches": np.where(np.arange(z["diff3d"].shape[0])[:, None, None, None] == 3,
                                                              np.nan, z["ground_truth_patches"])},
                       "key 'ground_truth_patches'"),
        "numeric metadata": ({**z, "_metadata": np.arange(3)}, "key '_metadata'"),
    }
    for case, (arrays, key) in cases.items():
        p = tmp_path / f"{case.replace(' ', '_')}.npz"
        np.savez(p, **arrays)
        rc, err = _run(capsys, ["validate", str(p)])
        assert rc == 2 and str(p) in err and key in err and err.count("\n") == 1, (case, err)
        rc, err = _run(capsys, ["train", "--train", str(p), "-o", str(tmp_path / "r"), "--epochs", "1"])
        assert rc == 2 and str(p) in err and key in err, (case, err)
    # the rescaling options are checked too
    for argv, text in ((["--nphotons", "0"], "argument --nphotons"), (["--intensity-scale", "-1"],
                       "argument --intensity-scale"), (["--nphotons", "1e6", "--intensity-scale", "2"], "not both")):
        rc, err = _run(capsys, ["validate", str(data), *argv])
        assert rc == 2 and text in err, (argv, err)


# ---------------------------------------------------------------------------------------------
# 6. resume fingerprints the labels; NaN labels are refused
# ---------------------------------------------------------------------------------------------
def test_resume_fingerprints_supervised_labels_and_refuses_nan_labels(tmp_path):
    ds = _tiny()
    mcfg = ModelConfig(kind="supervised", n_filters_scale=1)
    ptychopinn.train(ds, tmp_path / "run", mcfg, _tiny_train(), progress=False)
    relabelled = ds.subset(np.arange(ds.n_patterns))
    relabelled.ground_truth_patches = ds.ground_truth_patches * np.complex64(np.exp(0.5j))
    with pytest.raises(ConfigError, match="cannot resume.*data"):
        ptychopinn.train(relabelled, tmp_path / "run", mcfg, _tiny_train(epochs=2, resume=True), progress=False)
    # the PINN does not use labels: changing them does not block its resume
    pinn = ModelConfig(n_filters_scale=1)
    ptychopinn.train(ds, tmp_path / "pinn", pinn, _tiny_train(), progress=False)
    res = ptychopinn.train(relabelled, tmp_path / "pinn", pinn, _tiny_train(epochs=2, resume=True), progress=False)
    assert res.epochs_run == 2
    bad = ds.subset(np.arange(ds.n_patterns))
    bad.ground_truth_patches = ds.ground_truth_patches.copy()
    bad.ground_truth_patches[5, 3, 3, 0] = np.inf
    with pytest.raises(DataError, match="ground_truth_patches.*NaN or Inf"):
        ptychopinn.train(bad, tmp_path / "nan", mcfg, _tiny_train(), progress=False)


# ---------------------------------------------------------------------------------------------
# 7. messages name the file and key; torch refusals are one line
# ---------------------------------------------------------------------------------------------
def test_refusals_name_file_and_key_in_one_line(tmp_path, capsys, data):
    odd = tmp_path / "n48.npz"
    _tiny(n=48, size=100).save(odd)
    rc, err = _run(capsys, ["train", "--train", str(odd), "-o", str(tmp_path / "r48"), "--epochs", "1"])
    assert rc == 2 and f"{odd}: key 'diff3d'" in err and "48" in err and err.count("\n") == 1, err
    assert not (tmp_path / "r48").exists()
    assert main(["validate", str(odd)]) == 0  # valid data, but validate says the PINN cannot take it
    assert "PINN models:        not usable at N=48" in capsys.readouterr().out

    # a checkpoint torch refuses to unpickle: its many-line advice is cut to one line
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": 1, "evil": ConfigError("x")}, run / "checkpoint.pt")
    rc, err = _run(capsys, ["train", "--train", str(data), "-o", str(run), "--epochs", "1", "--resume"])
    assert rc == 2 and f"{run / 'checkpoint.pt'}: unreadable checkpoint" in err, err
    assert err.count("\n") == 1, err
