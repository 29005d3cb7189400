"""Position refinement in the PINN fit: the corrected group offsets against the grouping oracle,
the refusals, the saved positions, and a small scan with known errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from ptychopinn.cli.main import main as cli_main
from ptychopinn.data.grouping import group_offsets
from ptychopinn.errors import ConfigError
from ptychopinn.training import trainer as T
from ptychopinn.training.trainer import train

from training_helpers import tiny_dataset, tiny_model, tiny_train


def test_corrected_offsets_are_the_offsets_of_the_corrected_positions() -> None:
    ds = tiny_dataset(n_images=40)
    mcfg = tiny_model(gridsize=2).with_N(ds.N)
    prep = T._prepare(ds, mcfg, tiny_train(), 1.0, torch.device("cpu"), None, False)
    rng = np.random.default_rng(3)
    delta = rng.normal(0, 1.5, (ds.n_patterns, 2))
    prep.delta = torch.nn.Parameter(torch.from_numpy(delta).float())
    gidx = torch.arange(prep.groups.shape[0])
    _, off, _, _ = T._batch(prep, gidx, torch.device("cpu"))
    # oracle: the grouping's own offsets (member - centroid) of the moved positions
    want, _ = group_offsets(ds.positions_yx + delta, prep.groups.numpy())
    np.testing.assert_allclose(off.detach().numpy(), want, atol=1e-4)
    # and the gradient reaches every member's correction
    off.square().sum().backward()
    assert prep.delta.grad is not None and torch.count_nonzero(prep.delta.grad) > 0


def test_refined_positions_remove_the_mean_correction() -> None:
    rec = np.array([[10.0, 20.0], [30.0, 40.0], [50.0, 25.0]])
    delta = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 2.0]])
    out = T.refined_positions(rec, delta)
    np.testing.assert_allclose(out - rec, [[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]])


def test_refine_positions_needs_gridsize_2(tmp_path: Path) -> None:
    ds = tiny_dataset(n_images=16)
    with pytest.raises(ConfigError, match="gridsize >= 2"):
        train(ds, tmp_path / "run", tiny_model(gridsize=1), tiny_train(refine_positions=True), progress=False)
    with pytest.raises(ConfigError, match="position_lr"):
        tiny_train(position_lr=0.0)


def test_cli_refuses_meaningless_position_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d.npz"
    tiny_dataset(n_images=16).save(data)
    rc = cli_main(["train", "--train", str(data), "-o", str(tmp_path / "r"), "--position-lr", "0.1"])
    assert rc == 2 and "--refine-positions" in capsys.readouterr().err
    rc = cli_main(["train", "--train", str(data), "-o", str(tmp_path / "r"), "--refine-positions",
                   "--gridsize", "1"])
    assert rc == 2 and "--gridsize 1" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_training_saves_refined_positions_and_records_them(tmp_path: Path) -> None:
    ds = tiny_dataset(n_images=32)
    res = train(ds, tmp_path / "run", tiny_model(gridsize=2),
                tiny_train(epochs=2, refine_positions=True, position_warmup_epochs=0.0, position_lr=0.05),
                progress=False)
    ref = res.extra["refined_positions_yx"]
    assert ref.shape == (ds.n_patterns, 2)
    moved = ref - ds.positions_yx
    assert np.abs(moved).max() > 0 and np.allclose(moved.mean(axis=0), 0.0, atol=1e-9)
    with np.load(tmp_path / "run" / T.POSITIONS_FILE) as z:
        np.testing.assert_allclose(z["xcoords"], ref[:, 1])
        np.testing.assert_allclose(z["ycoords_recorded"], ds.ycoords)
    hist = res.history
    assert all("position_correction_rms" in h for h in hist)
    # held for the warm-up: no movement in the first epoch when the warm-up covers it
    res2 = train(ds, tmp_path / "run2", tiny_model(gridsize=2),
                 tiny_train(epochs=1, refine_positions=True, position_warmup_epochs=1.0), progress=False)
    np.testing.assert_allclose(res2.extra["refined_positions_yx"], ds.positions_yx)
    assert dataclasses.asdict(tiny_train())["refine_positions"] is False


@pytest.mark.slow
def test_refinement_moves_positions_towards_the_truth(tmp_path: Path) -> None:
    """Known random errors (2 px RMS) on a small simulated scan: the learnt corrections correlate with
    the true errors (measured cosine 0.32 on this scan; 0 for corrections unrelated to the truth)."""
    from ptychopinn.data.simulate import simulate
    from ptychopinn.inference.fit import DEFAULT_MODEL, DEFAULT_TRAIN, reconstruct_scan

    truth = simulate(N=32, n_images=300, nphotons=1e6, object_size=96, seed=0)
    rng = np.random.default_rng(101)
    rec_yx = np.clip(truth.positions_yx + rng.normal(0, np.sqrt(2.0), (truth.n_patterns, 2)), 17, 96 - 17)
    recorded = dataclasses.replace(truth, xcoords=rec_yx[:, 1].copy(), ycoords=rec_yx[:, 0].copy(),
                                   xcoords_start=None, ycoords_start=None)
    tcfg = dataclasses.replace(DEFAULT_TRAIN, epochs=15, refine_positions=True, position_lr=0.02,
                               position_warmup_epochs=1.0, device="cpu")
    res = reconstruct_scan(recorded, tmp_path / "r", DEFAULT_MODEL, tcfg, from_bundle=None, progress=False)
    corr = res.training.extra["refined_positions_yx"] - rec_yx
    need = truth.positions_yx - rec_yx
    need -= need.mean(axis=0)
    cosine = float(np.sum(corr * need) / np.linalg.norm(corr) / np.linalg.norm(need))
    assert cosine > 0.15, cosine
    with np.load(tmp_path / "r" / "reconstruction.npz") as z:  # stitched at the refined positions
        np.testing.assert_allclose(z["xcoords"], res.training.extra["refined_positions_yx"][:, 1], atol=1e-6)
    with np.load(tmp_path / "r" / "refined_positions.npz") as z:  # saved beside the reconstruction too
        np.testing.assert_allclose(z["ycoords"], res.training.extra["refined_positions_yx"][:, 0])
        np.testing.assert_allclose(z["xcoords_recorded"], rec_yx[:, 1])
