"""The library's plausibility checks (``check_dataset``) and ``InputOptions.changes``, without the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from ptychopinn.data.checks import check_dataset
from ptychopinn.data.contract import load_dataset
from ptychopinn.data.cxi import InputOptions, PositionConvention
from ptychopinn.errors import DataError


def _save(tmp_path, name, *, corner=False, metres=False, constant_object=False):
    n, m = 16, 6
    yy, xx = np.mgrid[:n, :n]
    # a centred Gaussian pattern: the zero frequency at N//2 (moved to the corner by hand when asked)
    pat = np.exp(-((yy - n // 2) ** 2 + (xx - n // 2) ** 2) / 8.0) * 30
    if corner:
        pat = np.roll(pat, (-(n // 2), -(n // 2)), axis=(0, 1))
    x = np.arange(m) * (1e-7 if metres else 3.0) + 8
    d = {"diff3d": np.repeat(pat[None], m, axis=0).astype(np.float32), "probeGuess": np.ones((n, n), np.complex64),
         "xcoords": x, "ycoords": np.full(m, 8.0)}
    if constant_object:
        d["objectGuess"] = np.ones((40, 40), np.complex64)
    np.savez(tmp_path / name, **d)
    return load_dataset(tmp_path / name)


def test_check_dataset_passes_clean_data_and_reports_notes(tmp_path):
    ds = _save(tmp_path, "ok.npz", constant_object=True)
    seen = []
    findings = check_dataset(ds, report=seen.append)
    assert [(f.level, f.key) for f in findings] == [("note", "objectGuess")]
    assert seen == findings


@pytest.mark.parametrize("kind,key", [("corner", "diff3d"), ("metres", "xcoords")])
def test_check_dataset_refuses_unless_forced(tmp_path, kind, key):
    ds = _save(tmp_path, f"{kind}.npz", **{kind: True})
    with pytest.raises(DataError, match=f"{kind}.npz: key '{key}'.*override with --force"):
        check_dataset(ds)
    seen = []
    findings = check_dataset(ds, force=True, report=seen.append)
    assert [(f.level, f.key) for f in findings] == [("refuse", key)]
    assert seen == findings  # the overridden refusal is reported


def test_check_dataset_reports_notes_before_refusing(tmp_path):
    ds = _save(tmp_path, "both.npz", corner=True, constant_object=True)
    seen = []
    with pytest.raises(DataError):
        check_dataset(ds, report=seen.append)
    assert [f.level for f in seen] == ["note"]


def test_input_options_changes():
    assert not InputOptions().changes("scan.npz")
    assert InputOptions().changes("scan.cxi")  # a beamline file is converted on reading
    assert InputOptions().changes("workflow.h5")
    for opts in (InputOptions(PositionConvention(flip="x")), InputOptions(PositionConvention(transpose=True)),
                 InputOptions(fftshift=True), InputOptions(mask="m.npy"), InputOptions(probe_from="p.npz"),
                 InputOptions(product="product.h5")):
        assert opts.changes("scan.npz")
