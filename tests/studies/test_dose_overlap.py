"""Dose x overlap study (seed 002) on the quick preset, and the training-loss guardrail."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from ptychopinn.cli.main import main
from ptychopinn.studies.dose_overlap import (
    LEAK_NCC_THRESHOLD,
    SUMMARY_FILES,
    check_loss,
    cut_object,
    leakage,
    max_ncc,
    mirror_tile,
    prepare_object,
    run_dose_overlap,
    spacing,
)
from ptychopinn.studies.photon_grid import dose_label

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "Run1084_recon3_postPC.npz"


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _has_ptychi():
    try:
        from ptychopinn.iterative.ptychi_runner import import_ptychi

        import_ptychi()
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.slow
def test_every_file_exists_and_parses(dose_overlap_quick):
    root, cfg, _ = dose_overlap_quick
    for name in SUMMARY_FILES:
        assert (root / name).is_file(), name
    run = json.loads((root / "run_manifest.json").read_text())
    assert [d["dose"] for d in run["datasets"]] == list(cfg.doses)
    for d in run["datasets"]:
        for split in ("train", "test"):
            assert d[split]["sha256"] == _sha(root / d[split]["path"])
    obj = run["resolved"]
    assert obj["tile"] == cfg.tile and obj["N"] == 32
    assert run["datasets"][0]["split"]["object"]["resample_factor"] == 0.5  # 64-px probe file, N = 32
    tm = json.loads((root / "training_manifest.json").read_text())
    assert {(r["view"], r["gridsize"], r["kind"]) for r in tm["jobs"]} == {
        ("full", 1, "pinn"), ("full", 1, "supervised"), ("dense", 2, "pinn"), ("sparse", 2, "pinn")}
    for r in tm["jobs"]:
        hist = json.loads((root / r["bundle_path"] / "history.json").read_text())
        assert r["final_loss"] == hist[-1]["train_loss"]
        assert r["bundle_sha256"] == _sha(root / r["bundle_path"] / "model.safetensors")
    skip = json.loads((root / "skip_summary.json").read_text())
    assert skip["skipped_count"] == len(skip["skipped_views"]) + len(skip["skipped_arms"])
    labels = {"PtychoPINN", "PtychoPINN_gs1", "Baseline"} | ({"PtyChi"} if _has_ptychi() else set())
    rows = _rows(root / "metrics.csv")
    for d in cfg.doses:
        t = dose_label(d)
        assert (root / "views" / t / "spacing_histograms.png").is_file()
        for view in ("dense", "sparse"):
            cdir = root / "compare" / t / view / "comparison"
            for f in ("comparison_metrics.csv", "frc_curves.csv", "reconstructions_aligned.npz",
                      "comparison_plot.png", "comparison.json"):
                assert (cdir / f).is_file()
            models = {r["model"] for r in _rows(cdir / "comparison_metrics.csv")}
            assert models == labels
            assert {r["model"] for r in rows if float(r["dose"]) == d and r["view"] == view} == labels
            summary_cfg = json.loads((cdir / "comparison.json").read_text())["config"]
            assert summary_cfg["ms_ssim_sigma"] == 1.0 and summary_cfg["register"] is True
    md = (root / "summary.md").read_text()
    assert md.count("## Dose ") == 2 * len(cfg.doses) and "best phase MS-SSIM" in md
    # comparisons: every arm of every (dose, view) scored, none failed
    cmp = run["comparisons"]
    assert cmp["n_success"] == len(labels) * 2 * len(cfg.doses) and cmp["n_failed"] == 0
    assert f"Comparisons: {cmp['n_success']} arm scorings succeeded, 0 failed." in md
    # 2 epochs cannot show a 5-epoch plateau: no arm is called converged, and the summary says so
    assert all(r["convergence"]["converged"] is False and r["protocol"] == "modern" for r in tm["jobs"])
    assert f"Not converged ({len(tm['jobs'])} of {len(tm['jobs'])}" in md and "training protocol 'modern'" in md


@pytest.mark.slow
def test_split_cuts_the_object_before_scanning(dose_overlap_quick):
    root, cfg, _ = dose_overlap_quick
    for d in cfg.doses:
        t = dose_label(d)
        s = json.loads((root / "data" / t / "split.json").read_text())
        o = s["object"]
        assert o["construction"] == "cut, then scan each half" and o["tile_mode"] == "mirror, within each half"
        h = o["shape"][0]
        assert o["train_range"] == [0, h // 2] and o["test_range"] == [h // 2, h]
        for split in ("train", "test"):
            z = np.load(root / "data" / t / f"{split}.npz")
            assert z["objectGuess"].shape == tuple(o["shapes"][split])
            assert z["diff3d"].shape[0] == s[f"n_{split}"]
        assert s["n_train"] + s["n_test"] == cfg.n_images
        # each half's ground truth is made of its own rows only: the training object's first
        # half-height rows are the prepared object's first half (mirror tiling starts unflipped)
        tr = np.load(root / "data" / t / "train.npz")["objectGuess"]
        te = np.load(root / "data" / t / "test.npz")["objectGuess"]
        hh = o["half_shapes"]["train"][0]
        assert not np.allclose(tr[:hh], te[:hh])
        assert s["leakage"]["max_ncc"] < s["leakage"]["threshold"] and s["ok"] is True


def _old_construction(obj, tile=4):
    """a7a221a's object: mirror-tile the whole object tile x tile, then split at half height."""
    row = np.concatenate([obj if j % 2 == 0 else obj[:, ::-1] for j in range(tile)], axis=1)
    big = np.concatenate([row if i % 2 == 0 else row[::-1, :] for i in range(tile)], axis=0)
    c = big.shape[0] // 2
    return big[:c], big[c:]


def _skimage_max_ncc(image, target, size, stride):
    """Oracle: skimage's match_template over every size x size patch of image on a stride."""
    from skimage.feature import match_template

    best = 0.0
    for y in range(0, image.shape[0] - size + 1, stride):
        for x in range(0, image.shape[1] - size + 1, stride):
            t = image[y:y + size, x:x + size]
            if t.std() > 1e-12:
                best = max(best, float(match_template(target, t).max()))
    return best


def _highpass(a, size):
    from scipy import ndimage

    return a - ndimage.gaussian_filter(a, size / 16, mode="reflect")


@pytest.mark.slow
@pytest.mark.skipif(not REAL.is_file(), reason="shared Run1084 object not present")
def test_cut_then_scan_does_not_leak_and_the_old_tiling_does():
    """Highest NCC (skimage match_template) of a probe-sized test patch against the training object,
    at the full preset's N = 64: below the threshold for the cut halves, ~1 for a7a221a's tiling."""
    n, stride = 64, 32
    obj, _ = prepare_object(str(REAL), n, 64, n // 4)
    train, test, rec = cut_object(obj, "y", 4)
    old_train, old_test = _old_construction(obj)
    for part in (np.abs, np.angle):
        new = _skimage_max_ncc(_highpass(part(test), n), _highpass(part(train), n), n, stride)
        old = _skimage_max_ncc(_highpass(part(old_test), n), _highpass(part(old_train), n), n, stride)
        assert new < LEAK_NCC_THRESHOLD, (part.__name__, new)
        assert old > 0.999, (part.__name__, old)
    lk = leakage(train, test, n, stride)  # the study's own measure agrees with the oracle
    want = max(_skimage_max_ncc(_highpass(p(test), n), _highpass(p(train), n), n, stride) for p in (np.abs, np.angle))
    assert lk["max_ncc"] == pytest.approx(want, abs=1e-6) and lk["ok"] is True
    assert leakage(old_train, old_test, n, stride)["ok"] is False


def test_max_ncc_finds_a_planted_copy():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(40, 50))
    image = rng.normal(size=(24, 24))
    assert max_ncc(image, target, 8, 4) < 0.9
    image[4:12, 8:16] = 3.0 * target[20:28, 30:38] + 1.0  # NCC is invariant to gain and offset
    assert max_ncc(image, target, 8, 4) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.slow
def test_views_dense_accepts_more_and_spacing_respects_S(dose_overlap_quick):
    root, cfg, _ = dose_overlap_quick
    for d in cfg.doses:
        t = dose_label(d)
        views = json.loads((root / "views" / t / "views.json").read_text())["views"]
        for split in ("train", "test"):
            full = np.load(root / "data" / t / f"{split}.npz")
            pos = np.stack([full["ycoords"], full["xcoords"]], axis=1)
            assert views["dense"]["splits"][split]["acceptance_rate"] > views["sparse"]["splits"][split]["acceptance_rate"]
            for view, f in (("dense", cfg.f_dense), ("sparse", cfg.f_sparse)):
                s = (1 - f) * 32
                assert views[view]["S_px"] == pytest.approx(s)
                g = np.load(root / "views" / t / f"{view}_{split}_groups.npz")
                idx, centres = g["indices"], g["centres"]
                assert idx.shape[1] == 4
                np.testing.assert_allclose(centres, pos[idx].mean(axis=1), atol=1e-9)  # centroids of members
                assert pdist(centres).min() >= s  # brute-force pairwise spacing
                rec = views[view]["splits"][split]
                assert rec["accepted_groups"] == len(idx)
                assert rec["acceptance_rate"] == pytest.approx(len(idx) / rec["candidate_groups"])
                sub = np.load(root / "views" / t / f"{view}_{split}.npz")
                got = np.stack([sub["ycoords"], sub["xcoords"]], axis=1)
                want = pos[np.unique(idx.ravel())]
                np.testing.assert_array_equal(got, want)  # the view = the members of its accepted groups
                for k in ("overlap_metric1_within_group", "overlap_metric2_image_to_neighbours",
                          "overlap_metric3_group_to_group"):
                    assert 0 <= rec[k] <= 1
            assert (views["dense"]["splits"][split]["overlap_metric3_group_to_group"]
                    > views["sparse"]["splits"][split]["overlap_metric3_group_to_group"])


@pytest.mark.slow
def test_a_view_with_too_few_groups_is_skipped_with_its_reason(dose_overlap_quick, tmp_path):
    src, cfg, _ = dose_overlap_quick
    root = tmp_path / "study"
    shutil.copytree(src, root)  # resumes from the finished study: the datasets are reused
    views = json.loads((src / "views" / "p1e3" / "views.json").read_text())["views"]
    n_sparse = views["sparse"]["splits"]["train"]["accepted_groups"]
    cfg2 = dataclasses.replace(cfg, doses=(1e3,), min_view_groups=n_sparse + 1)
    res = run_dose_overlap(root, cfg2, progress=False, log=lambda s: None)
    assert res.ok and "data/p1e3" in res.skipped
    skip = json.loads((root / "skip_summary.json").read_text())
    assert [(s["dose"], s["view"]) for s in skip["skipped_views"]] == [(1e3, "sparse")]
    assert "min_view_groups" in skip["skipped_views"][0]["reason"]
    for jid in ("train/p1e3/pinn_gs2_sparse", "ptychi/p1e3/sparse", "compare/p1e3/sparse"):
        st = json.loads((root / jid / "status.json").read_text())
        assert st["status"] == "skipped" and st["reason"] == skip["skipped_views"][0]["reason"]
        assert not (root / jid / "model.safetensors").exists()
    tm = json.loads((root / "training_manifest.json").read_text())
    assert "sparse" not in {r["view"] for r in tm["jobs"]}
    assert "## Dose 1e+03, dense view" in (root / "summary.md").read_text()


def test_spacing_rule_and_mirror_tile():
    assert spacing(0.7, 128) == pytest.approx(38.4) and spacing(0.2, 128) == pytest.approx(102.4)
    a = np.arange(6.0).reshape(2, 3)
    t = mirror_tile(a, 2)
    np.testing.assert_array_equal(t, [[0, 1, 2, 2, 1, 0], [3, 4, 5, 5, 4, 3], [3, 4, 5, 5, 4, 3], [0, 1, 2, 2, 1, 0]])


# ---- check-loss ---------------------------------------------------------------------------------
def _manifest(**losses):
    return {"jobs": [{"id": k, "dose": 1e3, "view": "dense" if "dense" in k else "full",
                      "gridsize": 2 if "gs2" in k else 1, "final_loss": v} for k, v in losses.items()]}


def test_check_loss_passes_within_tolerance_and_fails_on_regression():
    ref = _manifest(gs1=2.0, gs2_dense=-100.0)
    assert check_loss(ref, _manifest(gs1=2.09, gs2_dense=-96.0), 0.05) == []  # 2.1 and -95 are the limits
    p = check_loss(ref, _manifest(gs1=2.11, gs2_dense=-100.0), 0.05)
    assert len(p) == 1 and p[0].startswith("gs1: final_loss 2.11 exceeds")
    p = check_loss(ref, _manifest(gs1=2.0, gs2_dense=-94.0), 0.05)  # negative NLL: tolerance on |reference|
    assert len(p) == 1 and p[0].startswith("gs2_dense")
    assert check_loss(ref, _manifest(gs1=2.11, gs2_dense=-100.0), 0.05, gridsize=2) == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None])
def test_check_loss_fails_on_missing_or_non_finite(bad):
    ref = _manifest(gs1=2.0)
    assert "not finite" in check_loss(ref, _manifest(gs1=bad))[0]
    assert check_loss(ref, _manifest(other=1.0)) == ["gs1: missing from the candidate"]


def test_check_loss_cli_exit_codes(tmp_path, capsys):
    ref, ok, bad = tmp_path / "ref.json", tmp_path / "ok.json", tmp_path / "bad.json"
    ref.write_text(json.dumps(_manifest(gs1=2.0)))
    ok.write_text(json.dumps(_manifest(gs1=1.9)))
    bad.write_text(json.dumps(_manifest(gs1=3.0)))
    assert main(["study", "check-loss", "--reference", str(ref), "--candidate", str(ok)]) == 0
    assert main(["study", "check-loss", "--reference", str(ref), "--candidate", str(bad)]) == 1
    assert main(["study", "check-loss", "--reference", str(ref), "--candidate", str(bad), "--tolerance", "0.6"]) == 0
    out = capsys.readouterr().out
    assert "FAIL gs1: final_loss 3 exceeds the reference 2" in out
    (tmp_path / "junk.json").write_text("{not json")
    assert main(["study", "check-loss", "--reference", str(ref), "--candidate", str(tmp_path / "junk.json")]) == 2
    err = capsys.readouterr().err
    assert "junk.json: not JSON" in err and "Traceback" not in err


@pytest.mark.slow
def test_scoring_on_the_whole_test_half(dose_overlap_quick, tmp_path):
    src, cfg, _ = dose_overlap_quick
    root = tmp_path / "study"
    shutil.copytree(src, root)
    res = run_dose_overlap(root, dataclasses.replace(cfg, doses=(1e3,), test_on="full"), progress=False,
                           log=lambda s: None)
    assert res.ok and {"data/p1e3", "views/p1e3", "train/p1e3/pinn_gs1"} <= set(res.skipped)
    assert "ptychi/p1e3/full" in res.ran
    for view in ("dense", "sparse"):
        c = json.loads((root / "compare" / "p1e3" / view / "comparison" / "comparison.json").read_text())
        assert c["dataset"] == "data/p1e3/test.npz"
        assert set(c["models"]) >= {"PtychoPINN", "PtychoPINN_gs1", "Baseline"}
    assert "whole test half" in (root / "summary.md").read_text()


@pytest.mark.slow
def test_cli_filters_run_only_matching_jobs_and_print_bundles(dose_overlap_quick, tmp_path, capsys):
    src, cfg, _ = dose_overlap_quick
    root = tmp_path / "study"
    shutil.copytree(src, root)
    (root / "summary.md").unlink()
    args = ["study", "dose-overlap", "-o", str(root), "--object-from", cfg.object_from, "--probe-from",
            cfg.probe_from, "--preset", "quick", "--threads", "1", "-q"]
    assert main([*args, "--dose", "1e3", "--gridsize", "1", "--dry-run"]) == 0
    listed = [ln.split()[1] for ln in capsys.readouterr().out.splitlines() if ln.startswith(("reuse", "run"))]
    assert listed == ["data/p1e3", "train/p1e3/pinn_gs1", "train/p1e3/baseline"]
    assert main([*args, "--dose", "1e3", "--gridsize", "1"]) == 0
    out = capsys.readouterr().out
    for jid in ("train/p1e3/pinn_gs1", "train/p1e3/baseline"):
        assert f"bundle_path {root / jid}  bundle_sha256 {_sha(root / jid / 'model.safetensors')}" in out
    assert out.count("bundle_path ") == 2  # no other bundle
    assert "0 job(s) skipped" in out
    assert not (root / "summary.md").exists()  # a filtered run leaves the summary alone
    assert main([*args, "--dose", "1e4"]) == 2
    assert "--dose 10000 is not one of the study's doses" in capsys.readouterr().err


def test_seed_preset_is_seed_geometry_and_protocol():
    from ptychopinn.studies.dose_overlap import PRESETS, build_jobs

    if not REAL.is_file():
        pytest.skip("shared Run1084 object not present")
    cfg = dataclasses.replace(PRESETS["seed"], object_from=str(REAL), probe_from=str(REAL))
    assert cfg.N == 128 and cfg.protocol == "seed" and cfg.doses == (1e3, 1e4, 1e5)
    assert spacing(cfg.f_dense, cfg.N) == pytest.approx(38.4) and spacing(cfg.f_sparse, cfg.N) == pytest.approx(102.4)
    jobs = {j.id: j for j in build_jobs(dataclasses.replace(cfg, norm="group"))}
    for name in ("pinn_gs1", "pinn_gs2_dense"):  # today's network, not the legacy 'classic'
        assert (jobs[f"train/p1e3/{name}"].params["model"]["arch"], jobs[f"train/p1e3/{name}"].params["model"]["norm"]) \
            == ("unet", "group")
    for name in ("pinn_gs1", "pinn_gs2_dense", "baseline"):
        t = jobs[f"train/p1e3/{name}"].params["training"]
        assert (t["protocol"], t["patience"], t["val_fraction"], t["restore_best"]) == ("seed", 0, 0.0, False)
        assert jobs[f"train/p1e3/{name}"].params["model"]["intensity_scale_trainable"] is (name != "baseline")
