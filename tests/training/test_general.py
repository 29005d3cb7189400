"""General (probe-conditioned) model: per-sample probes in the physics, corpus training, built-in names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptychopinn.data.corpus import CorpusConfig
from ptychopinn.errors import BundleError, ConfigError
from ptychopinn.model import build_model
from ptychopinn.model.config import ModelConfig
from ptychopinn.physics import families
from ptychopinn.physics.probe import default_probe, normalise_probe_energy


def test_per_sample_probes_give_each_sample_its_own_far_field() -> None:
    """Oracle: numpy's centred unitary FFT of probe_b * object_patch for each sample b."""
    n = 32
    cfg = ModelConfig(N=n, gridsize=1, n_filters_scale=1, border_branch=True, probe_conditioned=True)
    torch.manual_seed(0)
    model = build_model(cfg, default_probe(n), 1.0).eval()
    rng = np.random.default_rng(0)
    probes = [normalise_probe_energy(families.random_probe(n, k, rng))[0] for k in ("disk", "annular")]
    x = torch.rand(2, 1, n, n)
    pt = torch.from_numpy(np.stack(probes).astype(np.complex64))[:, None]
    scale = torch.tensor([2.0, 0.5]).view(2, 1, 1, 1)
    with torch.no_grad():
        out = model(x, torch.zeros(2, 1, 2), probe=pt, scale=scale)
    obj = out["object_patches"].numpy()
    for b in range(2):
        psi = probes[b] * obj[b, 0]
        want = np.abs(np.fft.fftshift(np.fft.fft2(psi, norm="ortho"))) * [2.0, 0.5][b]
        assert np.allclose(out["amplitude"][b, 0].numpy(), want, rtol=1e-4, atol=1e-4 * want.max())


def test_probe_conditioned_needs_the_unet_with_back_projection() -> None:
    with pytest.raises(ConfigError, match="probe_conditioned"):
        ModelConfig(arch="classic", probe_conditioned=True)


def test_set_probe_normalises_and_checks_the_shape() -> None:
    model = build_model(ModelConfig(N=32, probe_conditioned=True, border_branch=False), default_probe(32), 1.0)
    p = families.random_probe(32, "gaussian", np.random.default_rng(1)) * 7.0
    model.set_probe(p)
    assert float((model.probe_complex.abs() ** 2).sum()) == pytest.approx(16.0 ** 2, rel=1e-5)
    with pytest.raises(ValueError, match="N=32"):
        model.set_probe(np.ones((16, 16), complex))


def test_train_general_writes_a_bundle_that_reconstructs_with_the_scan_probe(tmp_path) -> None:
    from ptychopinn.data.corpus import Corpus
    from ptychopinn.inference.reconstruct import reconstruct
    from ptychopinn.model.bundle import load_bundle
    from ptychopinn.training.general import GENERAL_MODEL, GeneralTrainConfig, train_general

    ccfg = CorpusConfig(N=32, patterns_per_scan=16)
    tcfg = GeneralTrainConfig(steps=6, batch_size=4, scans_per_round=2, val_scans=1, val_every=3, device="cpu")
    run = train_general(tmp_path / "g", ccfg, GENERAL_MODEL, tcfg, progress=False)
    b = load_bundle(run)
    assert b.model_config.probe_conditioned and b.config["general"]["corpus"]["N"] == 32
    assert [h["step"] for h in b.history] == [3, 6] and all(np.isfinite(h["val_loss"]) for h in b.history)
    ds = Corpus(ccfg).scan(99)
    reconstruct(b.model, ds, device="cpu", progress=False)
    want = normalise_probe_energy(ds.probe)[0]
    assert np.allclose(b.model.probe_complex.detach().numpy(), want, atol=1e-5)  # the scan's probe, not the bundle's

    # --init-from: the same weights (a vanishing rate changes nothing), the scans after those seen
    tiny = GeneralTrainConfig(steps=2, batch_size=4, scans_per_round=2, val_scans=1, val_every=2, device="cpu",
                              lr=1e-30, min_lr=0.0, init_from=str(run))
    cont = load_bundle(train_general(tmp_path / "g2", ccfg, GENERAL_MODEL, tiny, progress=False))
    for k, v in load_bundle(run).model.state_dict().items():  # (b.model took the scan's probe above)
        assert torch.equal(v, cont.model.state_dict()[k]), k
    gen = cont.config["general"]
    assert gen["first_scan"] == b.config["data"]["train"]["n_scans"] == 2 and gen["previous"]["bundle"] == str(run)
    with pytest.raises(ConfigError, match="differs from this run's corpus in patterns_per_scan"):
        train_general(tmp_path / "g3", CorpusConfig(N=32, patterns_per_scan=8), GENERAL_MODEL, tiny, progress=False)


def test_builtin_names_resolve_and_unknown_ones_are_plain_paths(tmp_path) -> None:
    from ptychopinn.model.bundle import BUILTIN_BUNDLES, builtin_dir, general_bundle_for, resolve_bundle

    assert resolve_bundle(tmp_path) == tmp_path
    assert str(resolve_bundle("no-such-model")) == "no-such-model"
    for name, n in BUILTIN_BUNDLES.items():
        if (builtin_dir() / name / "config.json").is_file():
            assert resolve_bundle(name) == builtin_dir() / name
            assert general_bundle_for(n) == builtin_dir() / name
        else:
            with pytest.raises(BundleError, match="not installed"):
                resolve_bundle(name)
    assert general_bundle_for(48) is None
