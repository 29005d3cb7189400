"""Training across processes: SIGKILL + resume gives bit-identical weights; torchrun with two CPU
processes (gloo) trains and writes one bundle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training_helpers import read_history, strip_timing, tiny_dataset

SCRIPT = textwrap.dedent("""
    import sys, time
    from ptychopinn.model import losses
    real = losses.pinn_loss
    def slowed(*a, **k):  # slows training down so that the parent can kill it mid-run
        time.sleep(0.03)
        return real(*a, **k)
    losses.pinn_loss = slowed
    from ptychopinn.model.config import ModelConfig
    from ptychopinn.training.config import TrainConfig
    from ptychopinn.training.trainer import train
    data, run, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    train(data, run, ModelConfig(n_filters_scale=1, gridsize=2),
          TrainConfig(epochs=4, batch_size=8, n_groups=24, device="cpu", patience=0, seed=3, resume=resume),
          progress=False)
""")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def test_sigkill_then_resume_gives_identical_weights(tmp_path: Path) -> None:
    data = tmp_path / "tiny.npz"
    tiny_dataset(n_images=40).save(data)
    script = tmp_path / "run_train.py"
    script.write_text(SCRIPT)
    ref_dir, killed_dir = tmp_path / "ref", tmp_path / "killed"
    ref = subprocess.Popen([sys.executable, str(script), str(data), str(ref_dir), "0"], env=_env())
    victim = subprocess.Popen([sys.executable, str(script), str(data), str(killed_dir), "0"], env=_env())
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            h = killed_dir / "history.json"
            if h.exists() and len(json.loads(h.read_text() or "[]")) >= 1:
                break
            assert victim.poll() is None, "training finished or failed before it could be killed"
            time.sleep(0.02)
        assert victim.poll() is None, "training finished before it could be killed"
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert not (killed_dir / "model.safetensors").exists()
    done = len(read_history(killed_dir))
    assert 1 <= done < 4
    resumed = subprocess.run([sys.executable, str(script), str(data), str(killed_dir), "1"], env=_env(), timeout=300)
    assert resumed.returncode == 0
    assert ref.wait(timeout=300) == 0
    a = load_file(str(ref_dir / "model.safetensors"))
    b = load_file(str(killed_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run differs from the uninterrupted one"
    assert strip_timing(read_history(ref_dir)) == strip_timing(read_history(killed_dir))


def test_torchrun_two_cpu_processes(tmp_path: Path) -> None:
    data = tmp_path / "tiny.npz"
    tiny_dataset(n_images=64, seed=5).save(data)
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "ptychopinn", "train", "--train", str(data), "-o", str(out), "--epochs", "2",
           "--n-filters-scale", "1", "--batch-size", "8", "--device", "cpu", "--quiet", "--patience", "0"]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["result"]["world_size"] == 2
    hist = read_history(out)
    assert len(hist) == 2
    assert hist[1]["train_loss"] < hist[0]["train_loss"]
    # only rank 0 wrote: no stray temporary files
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["checkpoint.pt", "config.json", "history.json", "history.png", "model.safetensors", "probe.npz",
         "run_config.json"])


@pytest.fixture(autouse=True)
def _no_torchrun_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
