"""Bundle: round trip, contents, refusal of newer formats and incomplete bundles."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import ptychopinn
from ptychopinn.errors import BundleError
from ptychopinn.model.bundle import FORMAT_VERSION, load_bundle
from training_helpers import tiny_dataset, tiny_model, tiny_train


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("bundle")
    path = root / "tiny.npz"
    tiny_dataset().save(path)
    res = ptychopinn.train(path, root / "run", tiny_model(probe_trainable=True, intensity_scale_trainable=True),
                           tiny_train(epochs=1), progress=False)
    return path, root / "run", res


def test_bundle_round_trip(trained) -> None:
    path, run, res = trained
    b = ptychopinn.load_bundle(run)
    assert (b.N, b.gridsize, b.kind) == (32, 1, "pinn")
    assert not b.model.training
    assert b.model_config == res.model_config
    assert b.train_config["epochs"] == 1 and b.neighbor_count == 7
    assert b.intensity_scale == pytest.approx(res.intensity_scale["final"], rel=1e-6)
    x = torch.rand(4, 1, 32, 32)
    off = torch.zeros(4, 1, 2)
    res.model.eval()
    with torch.no_grad():
        ref = res.model(x, off)
        got = b.model(x, off)
    torch.testing.assert_close(got["amplitude"], ref["amplitude"], rtol=0, atol=0)
    torch.testing.assert_close(b.model.predict_patches(x, off), res.model.predict_patches(x, off), rtol=0, atol=0)
    with np.load(run / "probe.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["probe"], torch.view_as_complex(res.model.probe.detach()).numpy())
        assert set(z.files) >= {"probe", "probe_initial", "source_probe", "normalisation_factor"}


def test_bundle_config_contents(trained) -> None:
    path, run, res = trained
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["format_version"] == FORMAT_VERSION
    assert cfg["package_version"] == ptychopinn.__version__
    assert cfg["data"]["train"]["sha256"] == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    sc = cfg["intensity_scale"]
    assert {"data_derived", "closed_form", "used", "value", "final", "input_scale"} <= set(sc)
    assert sc["used"] == "data"
    assert sc["closed_form"] == pytest.approx(np.sqrt(1e6) / 16)  # nphotons from the metadata
    assert sc["data_derived"] == pytest.approx(sc["closed_form"], rel=0.02)
    assert sc["trainable"] is True
    assert cfg["probe"]["factor"] > 0 and cfg["probe"]["trainable"] is True
    assert cfg["model"]["N"] == 32 and cfg["training"]["epochs"] == 1
    hist = json.loads((run / "history.json").read_text())
    assert {"train_loss", "val_loss", "lr", "seconds"} <= set(hist[0])


def test_bundle_newer_format_version_is_refused(trained, tmp_path: Path) -> None:
    _, run, _ = trained
    copy = tmp_path / "newer"
    shutil.copytree(run, copy)
    cfg = json.loads((copy / "config.json").read_text())
    cfg["format_version"] = FORMAT_VERSION + 1
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BundleError, match="newer"):
        load_bundle(copy)


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "probe.npz", "history.json"])
def test_bundle_missing_file_is_refused(trained, tmp_path: Path, name: str) -> None:
    _, run, _ = trained
    copy = tmp_path / "incomplete"
    shutil.copytree(run, copy)
    (copy / name).unlink()
    with pytest.raises(BundleError, match=name.replace(".", r"\.")):
        load_bundle(copy)


def test_bundle_bad_weights_and_missing_dir(trained, tmp_path: Path) -> None:
    _, run, _ = trained
    with pytest.raises(BundleError, match="not found"):
        load_bundle(tmp_path / "nothing")
    copy = tmp_path / "bad"
    shutil.copytree(run, copy)
    cfg = json.loads((copy / "config.json").read_text())
    cfg["model"]["n_filters_scale"] = 2  # weights no longer fit
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BundleError, match="do not fit"):
        load_bundle(copy)


def test_weights_file_is_byte_identical_for_identical_weights(tmp_path) -> None:
    """safetensors writes its metadata map in arbitrary order; the bundle's weights file must still
    be the same bytes for the same weights (checked over several writes)."""
    import hashlib

    from ptychopinn.model import build_model
    from ptychopinn.model.config import ModelConfig
    from ptychopinn.physics.probe import default_probe
    from ptychopinn.model.bundle import WEIGHTS_FILE, save_bundle

    probe = default_probe(32)
    model = build_model(ModelConfig(N=32, n_filters_scale=1), probe, 3.0)
    cfg = {"model": model.config.to_dict(), "probe": {"factor": 1.0}}
    digests = set()
    for i in range(6):
        run = save_bundle(tmp_path / f"r{i}", model, cfg, [], probe, probe)
        digests.add(hashlib.sha256((run / WEIGHTS_FILE).read_bytes()).hexdigest())
    assert len(digests) == 1
