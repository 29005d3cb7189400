"""One command-line grammar: defaults in --help, -q/--quiet everywhere, --threads, --device,
--config round trips, run_config.json, Ctrl-C hints, logs without carriage returns."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ptychopinn.cli import _common
from ptychopinn.cli.main import COMMANDS, build_parser, main
from ptychopinn.errors import BundleError, ConfigError


def _sub(command: str) -> argparse.ArgumentParser:
    return build_parser(only=command)._command_parsers[command]


def _leaves(p: argparse.ArgumentParser, name: str):
    """(name, parser) of every runnable (sub-)command under ``p`` (``study`` has sub-commands)."""
    nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not nested:
        yield name, p
    for a in nested:
        for child_name, child in a.choices.items():
            yield from _leaves(child, f"{name} {child_name}")


LEAVES = [leaf for c in COMMANDS for leaf, _ in _leaves(_sub(c), c)]


def _leaf(name: str) -> argparse.ArgumentParser:
    command = name.split()[0]
    return dict(_leaves(_sub(command), command))[name]


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _value_options(p: argparse.ArgumentParser):
    for a in p._actions:
        if a.option_strings and a.nargs != 0 and not a.required and a.help is not argparse.SUPPRESS \
                and a.default is not argparse.SUPPRESS:
            yield a


@pytest.mark.parametrize("command", LEAVES)
def test_help_lists_every_default(command):
    p = _leaf(command)
    text = _flat(p.format_help())
    missing = []
    for a in _value_options(p):
        shown = _flat(p._get_formatter()._expand_help(a)) if a.help else ""
        assert re.sub(r"\s", "", shown) in re.sub(r"\s", "", text)  # what is checked is what --help prints
        want = "(default: " + ("" if a.default is None else _common._fmt_default(a.default))
        if want not in shown:  # a None default must be explained, any other shown as it is
            missing.append(a.option_strings[-1])
    assert not missing, f"{command}: --help shows no default for {missing}"


# options whose value is spelled differently from the field's
_SPELLED = {"border_branch": {"auto": None, "on": True, "off": False}}


@pytest.mark.parametrize("command, section", [
    ("simulate", "simulation"), ("train", "training"), ("train", "model"), ("compare", "comparison"),
    ("iterative", "ptychi"), ("demo", "demo"), ("photon-grid", "photon_grid")])
def test_help_defaults_are_the_dataclass_defaults(command, section):
    """Every option named like a config field defaults to that field's default (an instance of
    the dataclass built with no arguments is the oracle)."""
    p = _sub(command)
    cls = p.get_default("_config_sections")[section]
    oracle = cls()
    fields = {f.name for f in dataclasses.fields(cls)}
    checked = 0
    for a in _value_options(p):
        if a.dest in fields:
            want = getattr(oracle, a.dest)
            got = _SPELLED[a.dest][a.default] if a.dest in _SPELLED else a.default
            assert got == want, f"{command} {a.option_strings[-1]}: default {got!r} != {cls.__name__}.{a.dest} {want!r}"
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize("command", LEAVES)
def test_every_command_has_the_same_progress_switch(command):
    p = _leaf(command)
    quiet = [a for a in p._actions if "--quiet" in a.option_strings]
    assert quiet and quiet[0].option_strings == ["-q", "--quiet"] and quiet[0].dest == "quiet"
    for spelling in ("--no-progress", "--silent"):  # the old spellings are not offered in --help
        assert spelling not in p.format_help()


#: commands that write nothing (validate, parity-diff, study check-loss) or resume by design (a
#: study directory is reused job by job: rerunning continues it, like train --resume)
NO_OUTPUT = ("validate", "parity-diff", "study check-loss")
RESUMABLE = ("study dose-response", "study dose-overlap")


@pytest.mark.parametrize("command", [c for c in LEAVES if c not in NO_OUTPUT])
def test_every_command_writing_outputs_has_dash_o_and_the_same_overwrite_flag(command):
    p = _leaf(command)
    opts = {s for a in p._actions for s in a.option_strings}
    assert {"-o", "--output"} <= opts, f"{command} has no -o/--output"
    if command not in RESUMABLE:
        assert "--overwrite" in opts, f"{command} has no --overwrite"


@pytest.mark.parametrize("command", ["demo", "simulate", "train", "reconstruct", "infer", "compare", "iterative",
                                     "photon-grid"])
def test_compute_commands_take_threads_and_config(command):
    opts = {s for a in _sub(command)._actions for s in a.option_strings}
    assert {"--threads", "--config"} <= opts
    if command not in ("simulate", "compare", "photon-grid"):
        assert "--device" in opts


# ---------------------------------------------------------------------------------------------
# --device
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:1", "cuda:12"])
def test_device_names_accepted(name):
    assert _common.device_name(name) == name
    args = _sub("infer").parse_args(["--model", "m", "--data", "d", "-o", "o", "--device", name])
    assert args.device == name


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "cuda1", "CPU", "mps"])
def test_bad_device_names_exit_2_with_one_line(name, capsys):
    with pytest.raises(SystemExit) as e:
        main(["iterative", "--data", "d.npz", "-o", "o", "--device", name])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--device" in err and "cuda:K" in err


def test_auto_picks_the_gpu_with_most_free_memory(monkeypatch):
    from ptychopinn import _device

    free = {0: 1 << 30, 1: 5 << 30, 2: 3 << 30}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda k: (free[k], 8 << 30))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert _device.free_gpu() == 1
    assert _device.resolve_device("auto") == torch.device("cuda", 1)
    assert _device.resolve_device("cuda:2") == torch.device("cuda", 2)
    with pytest.raises(ConfigError, match="only 3 GPU"):
        _device.resolve_device("cuda:3")
    monkeypatch.setenv("LOCAL_RANK", "2")  # under torchrun each process keeps its own GPU
    assert _device.resolve_device("auto", local_rank=2) == torch.device("cuda", 2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_index_without_cuda_is_a_config_error():
    from ptychopinn._device import resolve_device

    with pytest.raises(ConfigError, match="cuda:1"):
        resolve_device("cuda:1")


def test_config_dataclasses_accept_cuda_index_and_refuse_nonsense():
    from ptychopinn.iterative.ptychi_runner import PtychiConfig
    from ptychopinn.training.config import TrainConfig

    assert TrainConfig(device="cuda:1").device == "cuda:1"
    assert PtychiConfig(device="cuda:1").device == "cuda:1"
    for cls in (TrainConfig, PtychiConfig):
        with pytest.raises(ConfigError, match="device"):
            cls(device="gpu")


# ---------------------------------------------------------------------------------------------
# --threads
# ---------------------------------------------------------------------------------------------
def test_default_threads_follow_omp_num_threads_then_the_cores(monkeypatch):
    from ptychopinn import _device

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert _device.default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(_device, "available_cores", lambda: 8)
    assert _device.default_threads() == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun: the cores are shared by 4 processes
    assert _device.default_threads() == 2


@pytest.mark.parametrize("n", [1, 2])
def test_threads_is_honoured_inside_the_run(n, tmp_path, monkeypatch):
    import ptychopinn.data.simulate as sim

    seen = []
    real = sim.simulate

    def spy(*a, **kw):
        seen.append(torch.get_num_threads())
        return real(*a, **kw)

    monkeypatch.setattr(sim, "simulate", spy)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # restored after the test
    before = torch.get_num_threads()
    torch.set_num_threads(3 - n)  # the other value, so the test sees a change
    try:
        out = tmp_path / "a.npz"
        assert main(["simulate", "-o", str(out), "--n-images", "20", "--N", "16", "--object-size", "40",
                     "--threads", str(n), "-q"]) == 0
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert seen == [n]
    assert after == 3 - n  # main() leaves the calling process's thread count as it was
    assert json.loads((tmp_path / "a.run_config.json").read_text())["_about"]["threads"] == n


def test_threads_must_be_positive(capsys):
    with pytest.raises(SystemExit) as e:
        main(["simulate", "-o", "x.npz", "--threads", "0"])
    assert e.value.code == 2 and "--threads" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# --config
# ---------------------------------------------------------------------------------------------
def _capture_train(monkeypatch):
    """Replace the training loop by a recorder of the configs the command built."""
    import ptychopinn.training.trainer as tr

    got = {}

    def fake_train(train_path, run_dir, mcfg, tcfg, **kw):
        got.update(model=mcfg, training=tcfg, kw=kw)
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        return SimpleNamespace(device="")  # the command prints nothing more for this

    monkeypatch.setattr(tr, "train", fake_train)
    return got


FLAGS = ["--epochs", "7", "--batch-size", "8", "--lr", "0.002", "--gridsize", "2", "--loss", "nll+mae",
         "--border-branch", "off", "--n-filters-scale", "1", "--patience", "0",
         "--device", "cpu", "--val-fraction", "0.2"]
TOML = """
# the same settings as FLAGS, as dataclass fields
[model]
gridsize = 2
border_branch = false
n_filters_scale = 1

[training]
epochs = 7
batch_size = 8
lr = 0.002
loss = "nll+mae"
patience = 0
device = "cpu"
val_fraction = 0.2
"""


def test_config_file_equals_the_same_flags(tmp_path, monkeypatch):
    got = _capture_train(monkeypatch)
    assert main(["train", "--train", "t.npz", "-o", str(tmp_path / "a"), "-q", *FLAGS]) == 0
    by_flags = dict(got)
    (tmp_path / "c.toml").write_text(TOML)
    assert main(["train", "--train", "t.npz", "-o", str(tmp_path / "b"), "-q", "--config", str(tmp_path / "c.toml")]) == 0
    assert got["model"] == by_flags["model"] and got["training"] == by_flags["training"]
    assert by_flags["training"].epochs == 7 and by_flags["model"].border_branch is False  # not the defaults
    # each run wrote its effective config; the two are the same but for the output path and time
    a = json.loads((tmp_path / "a" / "run_config.json").read_text())
    b = json.loads((tmp_path / "b" / "run_config.json").read_text())
    assert a["model"] == b["model"] and a["training"] == b["training"]
    assert a["training"]["epochs"] == 7 and a["model"]["gridsize"] == 2
    assert "overwrite" not in a["training"] and "resume" not in a["training"]  # command line only


def test_written_config_repeats_the_run_and_flags_win(tmp_path, monkeypatch):
    got = _capture_train(monkeypatch)
    assert main(["train", "--train", "t.npz", "-o", str(tmp_path / "a"), "-q", "--threads", "1", *FLAGS]) == 0
    first = dict(got)
    cfg = tmp_path / "a" / "run_config.json"
    assert main(["train", "--train", "t.npz", "-o", str(tmp_path / "b"), "--config", str(cfg)]) == 0
    assert got["model"] == first["model"] and got["training"] == first["training"]
    assert got["kw"]["progress"] is False  # [run] quiet = true came back too
    # a flag given on the command line wins over the file
    assert main(["train", "--train", "t.npz", "-o", str(tmp_path / "c"), "--config", str(cfg), "--epochs", "3",
                 "--model", "supervised", "--gridsize", "1"]) == 0
    assert got["training"].epochs == 3 and got["model"].kind == "supervised" and got["model"].gridsize == 1
    assert got["training"].lr == 0.002 and got["model"].border_branch is False


def test_config_fields_without_flags_are_honoured(tmp_path, monkeypatch):
    got = _capture_train(monkeypatch)
    (tmp_path / "c.json").write_text(json.dumps({"training": {"diagnostics": False, "lr_patience": 4},
                                                 "model": {"merge_eps": 1e-5}}))
    assert main(["train", "--train", "t.npz", "-o", str(tmp_path / "a"), "-q", "--config", str(tmp_path / "c.json")]) == 0
    assert got["training"].diagnostics is False and got["training"].lr_patience == 4 and got["model"].merge_eps == 1e-5


@pytest.mark.parametrize("doc, words", [
    ({"training": {"epoch": 3}}, ["c.json", "[training]", "epoch"]),
    ({"trainng": {"epochs": 3}}, ["c.json", "trainng"]),
    ({"run": {"no_such_option": 1}}, ["c.json", "[run]", "no_such_option"]),
    ({"run": {"epochs": "many"}}, ["c.json", "epochs"]),
    ({"training": {"overwrite": True}}, ["c.json", "overwrite", "command line"]),
    ({"run": {"resume": True}}, ["c.json", "resume", "command line"]),
])
def test_bad_config_file_is_one_line_exit_2(tmp_path, monkeypatch, capsys, doc, words):
    _capture_train(monkeypatch)
    (tmp_path / "c.json").write_text(json.dumps(doc))
    rc = main(["train", "--train", "t.npz", "-o", str(tmp_path / "a"), "--config", str(tmp_path / "c.json")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert not (tmp_path / "a").exists()


def test_simulate_config_round_trip_on_real_output(tmp_path):
    """simulate with flags, then with a flat TOML of SimulationConfig fields: identical data."""
    flags = ["--n-images", "30", "--N", "16", "--object-size", "40", "--nphotons", "1e4", "--seed", "5",
             "--scan", "raster"]
    assert main(["simulate", "-o", str(tmp_path / "a.npz"), "-q", *flags]) == 0
    (tmp_path / "s.toml").write_text('n_images = 30\nN = 16\nobject_size = 40\nnphotons = 1e4\nseed = 5\n'
                                     'scan = "raster"\n')
    assert main(["simulate", "-o", str(tmp_path / "b.npz"), "-q", "--config", str(tmp_path / "s.toml")]) == 0
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        np.testing.assert_array_equal(a["diff3d"], b["diff3d"])
        np.testing.assert_array_equal(a["xcoords"], b["xcoords"])
    ca = json.loads((tmp_path / "a.run_config.json").read_text())
    cb = json.loads((tmp_path / "b.run_config.json").read_text())
    assert ca["simulation"] == cb["simulation"] and ca["simulation"]["n_images"] == 30


# ---------------------------------------------------------------------------------------------
# Ctrl-C and interrupted runs
# ---------------------------------------------------------------------------------------------
def test_ctrl_c_after_a_checkpoint_says_how_to_resume(tmp_path, monkeypatch, capsys):
    import ptychopinn.training.trainer as tr

    run = tmp_path / "run"

    def interrupted(train_path, run_dir, mcfg, tcfg, **kw):
        run.mkdir()
        (run / "checkpoint.pt").write_bytes(b"x")
        (run / "history.json").write_text(json.dumps([{"epoch": 1}, {"epoch": 2}]))
        raise KeyboardInterrupt

    monkeypatch.setattr(tr, "train", interrupted)
    assert main(["train", "--train", "t.npz", "-o", str(run), "-q"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "epoch 2" in err and "checkpoint.pt" in err and "--resume" in err


def test_infer_on_an_interrupted_run_says_so(tmp_path):
    from ptychopinn.model.bundle import read_config

    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(BundleError, match="training was interrupted.*--resume"):
        read_config(tmp_path)


# ---------------------------------------------------------------------------------------------
# logs and the Python API
# ---------------------------------------------------------------------------------------------
def test_non_tty_training_log_is_one_line_per_epoch(tmp_path, capsys):
    """Under capsys stdout/stderr are not terminals: no carriage-return frames, one line per epoch,
    the thread count at start; the run also writes history.png and run_config.json."""
    data = tmp_path / "d.npz"
    assert main(["simulate", "-o", str(data), "--n-images", "48", "--N", "32", "--object-size", "72",
                 "--nphotons", "1e6"]) == 0
    capsys.readouterr()
    run = tmp_path / "run"
    assert main(["train", "--train", str(data), "-o", str(run), "--epochs", "2", "--n-filters-scale", "1",
                 "--batch-size", "16", "--device", "cpu", "--threads", "1", "--patience", "0"]) == 0
    cap = capsys.readouterr()
    text = cap.out + cap.err
    assert "\r" not in text
    assert len(re.findall(r"^epoch \d+/2: train", cap.err, flags=re.MULTILINE)) == 2
    assert "1 CPU threads" in cap.err
    assert (run / "history.png").is_file() and (run / "run_config.json").is_file()
    assert main(["infer", "--model", str(run), "--data", str(data), "-o", str(tmp_path / "rec"), "--threads", "1"]) == 0
    cap = capsys.readouterr()
    assert "\r" not in cap.out + cap.err and "1 CPU threads" in cap.out

    # an interrupted run (checkpoint, no bundle): infer says so, and takes the checkpoint itself,
    # which holds the same (best) weights as the finished bundle
    import shutil

    from ptychopinn.inference.reconstruct import reconstruct

    cut = tmp_path / "cut"
    cut.mkdir()
    shutil.copy(run / "checkpoint.pt", cut / "checkpoint.pt")
    assert main(["infer", "--model", str(cut), "--data", str(data), "-o", str(tmp_path / "r0"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "training was interrupted" in err and "--resume" in err and len(err.strip().splitlines()) == 1
    a = reconstruct(run, data, device="cpu", progress=False)
    b = reconstruct(cut / "checkpoint.pt", data, device="cpu", progress=False)
    np.testing.assert_array_equal(a.object, b.object)


def test_configs_a_user_needs_are_importable_from_the_package():
    import ptychopinn as pp
    from ptychopinn.evaluation.compare import CompareConfig
    from ptychopinn.iterative.ptychi_runner import PtychiConfig
    from ptychopinn.studies.demo import DemoConfig
    from ptychopinn.studies.photon_grid import PhotonGridConfig

    assert pp.PtychiConfig is PtychiConfig and pp.CompareConfig is CompareConfig
    assert pp.DemoConfig is DemoConfig and pp.PhotonGridConfig is PhotonGridConfig
    for name in ("TrainConfig", "ModelConfig", "SimulationConfig"):
        assert dataclasses.is_dataclass(getattr(pp, name))


def test_python_errors_name_the_field_not_the_flag(tmp_path):
    from ptychopinn.training.config import TrainConfig

    with pytest.raises(ConfigError) as e:
        TrainConfig(batch_size=0)
    assert "batch" in str(e.value) and "--" not in str(e.value)


def test_quiet_validate_prints_nothing_and_parity_log_takes_dash_o(tmp_path, capsys):
    data = tmp_path / "d.npz"
    assert main(["simulate", "-o", str(data), "--n-images", "20", "--N", "16", "--object-size", "40", "-q"]) == 0
    capsys.readouterr()
    assert main(["validate", str(data), "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["validate", str(data)]) == 0
    assert capsys.readouterr().out.strip()  # without -q: the summary
    args = _sub("parity-log").parse_args(["-o", "out"])
    assert args.output == "out"
