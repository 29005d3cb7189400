"""Contradictory or meaningless option pairs are refused before any work: exit 2, one line
naming both options, nothing written (the audit is listed in docs/reliability.md)."""

from __future__ import annotations

import pytest

from ptychopinn.cli.main import main

CASES = [
    (["train", "--train", "{d}", "-o", "{o}", "--resume", "--overwrite"], "--resume", "--overwrite"),
    (["train", "--train", "{d}", "-o", "{o}", "--probe-from", "{d}", "--probe-from-ptychi", "3"],
     "--probe-from", "--probe-from-ptychi"),
    (["reconstruct", "{d}", "-o", "{o}", "--resume", "--overwrite"], "--resume", "--overwrite"),
    (["reconstruct", "{d}", "-o", "{o}", "--from-bundle", "{o}", "--resume"], "--from-bundle", "--resume"),
    (["iterative", "--data", "{d}", "-o", "{o}", "--object-init", "dataset", "--init-object", "{d}"],
     "--init-object", "--object-init"),
    (["iterative", "--data", "{d}", "-o", "{o}", "--probe-fixed", "--save-probe", "{o}/p.npz"],
     "--probe-fixed", "--save-probe"),
    (["simulate", "-o", "{o}/s.npz", "--noiseless", "--noise-seed", "3"], "--noiseless", "--noise-seed"),
    (["simulate", "-o", "{o}/s.npz", "--object-from", "{d}", "--object-seed", "3"], "--object-from", "--object-seed"),
    (["simulate", "-o", "{o}/s.npz", "--object-from", "{d}", "--object", "grf"], "--object-from", "--object"),
    (["simulate", "-o", "{o}/s.npz", "--probe-from", "{d}", "--probe-defocus", "2"], "--probe-from", "--probe-defocus"),
    (["simulate", "-o", "{o}/s.npz", "--scan", "random", "--step", "3"], "--scan random", "--step"),
    (["compare", "--data", "{d}", "--recon", "a={d}", "-o", "{o}", "--no-register", "--register-on", "phase"],
     "--no-register", "--register-on"),
    (["compare", "--data", "{d}", "--recon", "a={d}", "-o", "{o}", "--no-register", "--upsample-factor", "10"],
     "--no-register", "--upsample-factor"),
    (["validate", "{d}", "--quiet", "--json"], "--quiet", "--json"),
    (["convert", "{d}", "-o", "{o}/c.npz", "--energy-ev", "8000"], "--to npz", "--energy-ev"),
    (["demo", "-o", "{o}", "--no-ptychi", "--ptychi-epochs", "3"], "--no-ptychi", "--ptychi-epochs"),
]


@pytest.mark.parametrize("argv, a, b", CASES, ids=[f"{c[0][0]}:{c[1]}+{c[2]}" for c in CASES])
def test_contradictory_pair_refused_before_any_work(tmp_path, capsys, argv, a, b):
    d = tmp_path / "missing.npz"  # never read: the refusal comes first
    o = tmp_path / "out"
    assert main([x.format(d=d, o=o) for x in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and a in err and b in err, err
    assert "not found" not in err and "Traceback" not in err
    assert not o.exists()
