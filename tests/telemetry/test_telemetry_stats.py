"""Telemetry statistics against numpy oracles on hand-made arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ptychopinn.telemetry import stats as st


def _oracle(a: np.ndarray) -> dict:
    v = np.abs(a) if np.iscomplexobj(a) else a
    v = v.astype(np.float64)
    fin = v[np.isfinite(v)]
    return {"min": fin.min(), "max": fin.max(), "mean": fin.mean(), "std": fin.std(),
            "nan_count": int(np.isnan(v).sum()), "finite_count": fin.size, "total_count": v.size}


def test_array_stats_hand_made_with_nan_and_inf():
    a = np.array([[1.0, 2.0, np.nan], [np.inf, -np.inf, 4.0]], dtype=np.float32)
    s = st.array_stats(a)
    assert s["shape"] == [2, 3] and s["dtype"] == "float32"
    assert s["nan_count"] == 1 and s["finite_count"] == 3 and s["total_count"] == 6
    assert s["min"] == 1.0 and s["max"] == 4.0
    assert s["mean"] == pytest.approx(7.0 / 3.0, rel=1e-15)
    assert s["std"] == pytest.approx(np.std([1.0, 2.0, 4.0]), rel=1e-15)
    assert "component" not in s


def test_array_stats_chunked_matches_numpy():
    rng = np.random.default_rng(1)
    a = (rng.normal(3.0, 2.0, (37, 5, 7)) * 1e3).astype(np.float32)
    a[3, 1, 2] = np.nan
    a[20, 0, 0] = np.inf
    ref = _oracle(a)
    for chunk in (1, 34, 35, 36, 1000, 10**7):  # rows of 35 elements: chunks of 1..many rows
        s = st.array_stats(a, chunk_elems=chunk)
        for k in ("min", "max", "nan_count", "finite_count", "total_count"):
            assert s[k] == ref[k], (chunk, k)
        assert s["mean"] == pytest.approx(ref["mean"], rel=1e-12)
        assert s["std"] == pytest.approx(ref["std"], rel=1e-12)


def test_array_stats_float64_accumulation_large_offset():
    # float32 accumulation would lose the small spread around a large offset
    a = np.full((1000, 10), 1e4, dtype=np.float32) + np.tile(np.arange(10, dtype=np.float32), (1000, 1))
    s = st.array_stats(a, chunk_elems=64)
    assert s["mean"] == pytest.approx(1e4 + 4.5, rel=1e-14)
    assert s["std"] == pytest.approx(math.sqrt(8.25), rel=1e-10)


def test_array_stats_complex_uses_modulus():
    a = np.array([3 + 4j, -5 + 0j, 0 + 1j], dtype=np.complex64)
    s = st.array_stats(a)
    assert s["component"] == "abs" and s["dtype"] == "complex64"
    assert (s["min"], s["max"]) == (1.0, 5.0)
    assert s["mean"] == pytest.approx(11.0 / 3.0)


def test_array_stats_torch_tensor_matches_numpy():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(9, 4, 4)).astype(np.float32)
    a[0, 0, 0] = np.nan
    s_t = st.array_stats(torch.from_numpy(a), chunk_elems=20)
    ref = _oracle(a)
    assert s_t["dtype"] == "float32" and s_t["shape"] == [9, 4, 4]
    assert s_t["nan_count"] == 1 and s_t["finite_count"] == ref["finite_count"]
    assert s_t["mean"] == pytest.approx(ref["mean"], rel=1e-12)
    assert s_t["std"] == pytest.approx(ref["std"], rel=1e-12)
    c = torch.from_numpy((a + 1j * a).astype(np.complex64))
    s_c = st.array_stats(c)
    assert s_c["dtype"] == "complex64" and s_c["component"] == "abs"
    assert s_c["mean"] == pytest.approx(_oracle(a + 1j * a)["mean"], rel=1e-6)


def test_array_stats_tensor_without_numpy_view():
    # bfloat16 has no numpy dtype: the chunked torch path is used
    t = torch.arange(40, dtype=torch.float32).reshape(10, 4).to(torch.bfloat16)
    ref = t.float().numpy().astype(np.float64)
    s = st.array_stats(t, chunk_elems=8)
    assert s["dtype"] == "bfloat16" and s["shape"] == [10, 4]
    assert s["mean"] == pytest.approx(ref.mean(), rel=1e-12)
    assert s["std"] == pytest.approx(ref.std(), rel=1e-12)
    assert (s["min"], s["max"]) == (ref.min(), ref.max())


def test_array_stats_all_nonfinite_and_scalar():
    s = st.array_stats(np.array([np.nan, np.inf]))
    assert s["mean"] is None and s["min"] is None and s["nan_count"] == 1 and s["finite_count"] == 0
    s0 = st.array_stats(np.float64(2.5))
    assert s0["shape"] == [] and s0["mean"] == 2.5 and s0["total_count"] == 1


def test_probe_stats_against_numpy():
    p = np.array([[1.0, 1j], [-2.0, 0.0]], dtype=np.complex64)
    s = st.probe_stats(p)
    amp = np.array([1.0, 1.0, 2.0, 0.0])
    assert s["energy"] == pytest.approx(6.0)
    assert s["amplitude"]["l2_norm"] == pytest.approx(math.sqrt(6.0))
    assert s["amplitude"]["mean"] == pytest.approx(amp.mean())
    assert s["amplitude"]["std"] == pytest.approx(amp.std())
    assert s["phase"]["max"] == pytest.approx(math.pi)
    assert s["phase"]["mean"] == pytest.approx((0 + math.pi / 2 + math.pi + 0) / 4)


def test_mask_stats():
    m = np.zeros((4, 4)); m[1:3, 1:3] = 1
    assert st.mask_stats(m) == {"nonzero_count": 4, "total_count": 16, "coverage_fraction": 0.25}


def _stages(means: dict) -> list:
    return [{"name": k, "stats": {"mean": v}} for k, v in means.items()]


def test_consistent_chain_passes_symmetry():
    s = 20.0
    stages = _stages({"raw_diffraction": 10.0, "grouped_diffraction": 10.1, "grouped_X_full": 10.1 / s,
                      "container_X": 10.1 / s, "training_labels_Y_amp": 10.1,
                      "inference_prediction": 0.98, "ground_truth_amplitude": 1.0})
    r = st.stage_ratios(stages)
    assert r["raw_to_grouped"] == pytest.approx(1.01)
    assert r["grouped_to_normalized"] == pytest.approx(1 / s)
    assert r["prediction_to_truth"] == pytest.approx(0.98)
    prod, chk = st.symmetry_check(r, intensity_scale_used=s)
    assert prod == pytest.approx(1.01 * 0.98)
    assert chk["actual"] == pytest.approx(1.01 * 0.98)
    assert chk["violated"] is False


def test_symmetry_flags_double_normalisation():
    s = 20.0
    # grouped_X_full normalised twice (X r^2); labels taken as container * s
    stages = _stages({"raw_diffraction": 10.0, "grouped_diffraction": 10.0, "grouped_X_full": 10.0 / s**2,
                      "container_X": 10.0 / s**2, "training_labels_Y_amp": 10.0 / s})
    _, chk = st.symmetry_check(st.stage_ratios(stages), intensity_scale_used=s)
    assert chk["violated"] is True
    assert chk["actual"] == pytest.approx(1 / s)
    assert chk["primary_deviation_source"] == "grouped_X_full"
    # without the scale the pair product is used
    _, chk2 = st.symmetry_check(st.stage_ratios(stages), intensity_scale_used=None)
    assert chk2["violated"] is True and chk2["primary_deviation_source"] == "grouped_X_full"


def test_comparison_stats_oracle():
    t = np.array([1.0, 2.0, 3.0, 4.0])
    p = 0.5 * t
    c = st.comparison_stats(t, p)
    assert c["mae"] == pytest.approx(np.mean(np.abs(p - t)))
    assert c["rmse"] == pytest.approx(math.sqrt(np.mean((p - t) ** 2)))
    assert c["max_abs"] == pytest.approx(2.0)
    assert c["pearson_r"] == pytest.approx(1.0)
    assert c["scaling_analysis"]["least_squares_scalar"] == pytest.approx(2.0)
    assert c["scaling_analysis"]["rescaled_mae"] == pytest.approx(0.0, abs=1e-12)
    assert c["scaling_analysis"]["truth_to_pred_ratio_mean"] == pytest.approx(2.0)
    assert c["bias_summary"]["median"] == pytest.approx(np.median(t - p))


def test_accumulator_over_batches_equals_whole_array():
    rng = np.random.default_rng(3)
    a = rng.normal(5.0, 3.0, (50, 3, 4))
    a[7, 1, 1] = np.nan
    acc = st.StatsAccumulator(chunk_elems=10)
    for lo in range(0, 50, 8):  # uneven batches, numpy and torch mixed
        part = a[lo:lo + 8]
        acc.update(torch.from_numpy(part) if lo % 16 else part)
    s = acc.stats()
    ref = _oracle(a)
    assert s["shape"] == [50, 3, 4] and s["nan_count"] == 1 and s["total_count"] == a.size
    assert (s["min"], s["max"]) == (ref["min"], ref["max"])
    assert s["mean"] == pytest.approx(ref["mean"], rel=1e-12)
    assert s["std"] == pytest.approx(ref["std"], rel=1e-12)


def test_gathered_stats_equals_fancy_indexing():
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 9, (20, 3, 3)).astype(np.float32)
    groups = rng.integers(0, 20, (11, 4))
    full = x[groups] * 0.25  # (11, 4, 3, 3): the oracle, built explicitly
    for src, idx in ((x, groups), (torch.from_numpy(x), torch.from_numpy(groups))):
        s = st.gathered_stats(src, idx, 0.25, rows_per_chunk=3)
        assert s["shape"] == [11, 4, 3, 3] and s["total_count"] == full.size
        assert s["mean"] == pytest.approx(full.astype(np.float64).mean(), rel=1e-6)
        assert s["std"] == pytest.approx(full.astype(np.float64).std(), rel=1e-5)
