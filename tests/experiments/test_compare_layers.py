"""The main job end to end on real Fashion-MNIST (tiny budget), resume, and the missing-data exit."""

import json
import os
import subprocess
import sys

import pytest

from evonorm.data import fashion_mnist as fm
from evonorm.experiments import compare_layers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HAVE_DATA = all(os.path.isfile(os.path.join(fm.data_dir(), name))
                for split in fm.FILES.values() for name in split[:2])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("compare"))
    config = compare_layers.CompareConfig(layers=("bn_relu", "evonorm_s0"), steps=20, batch_size=32,
                                          eval_every=10, eval_examples=200, log_every=10, workdir=workdir)
    lines = []
    summary = compare_layers.run(config, command="pytest tiny run", log=lines.append)
    return config, summary, lines


@pytest.mark.skipif(not HAVE_DATA, reason="Fashion-MNIST not installed")
def test_tiny_run_writes_sane_results(tiny_run):
    config, summary, lines = tiny_run
    assert sorted(os.listdir(config.workdir)) == ["accuracy.png", "layers", "results.json", "results.md"]
    with open(os.path.join(config.workdir, "results.json")) as f:
        saved = json.load(f)
    assert saved["command"] == "pytest tiny run" and saved["config"]["steps"] == 20
    assert saved["data"]["test_examples"] == 200 and saved["data"]["train_examples"] == 60000
    assert [r["layer"] for r in saved["results"]] == ["bn_relu", "evonorm_s0"]
    for r in saved["results"]:
        assert not r["diverged"] and r["completed_steps"] == 20
        assert 0.0 <= r["test_acc"] <= 1.0 and r["train_loss"] > 0 and r["steps_per_sec"] > 0
        assert [e["step"] for e in r["evals"]] == [10, 20]
    with open(os.path.join(config.workdir, "results.md")) as f:
        md = f.read()
    assert "| bn_relu |" in md and "| evonorm_s0 |" in md and "Fashion-MNIST" in md
    assert "pytest tiny run" in md and "Seed 0, 20 steps" in md
    with open(os.path.join(config.workdir, "accuracy.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert any("ETA layer" in line for line in lines)  # periodic progress with rate and ETA


@pytest.mark.skipif(not HAVE_DATA, reason="Fashion-MNIST not installed")
def test_rerun_with_the_same_flags_skips_finished_layers(tiny_run):
    config, first, _ = tiny_run
    lines = []
    again = compare_layers.run(config, command="pytest tiny run", log=lines.append)
    skipped = [line for line in lines if "skipped, finished result with the same flags" in line]
    assert len(skipped) == 2 and not any("training" in line for line in lines)
    assert [r["test_acc"] for r in again["results"]] == [r["test_acc"] for r in first["results"]]
    # Different flags do not reuse the cache.
    other = compare_layers.CompareConfig(**{**config.__dict__, "seed": 1})
    assert compare_layers._load_finished(other, "bn_relu") is None


def test_missing_data_exits_nonzero_with_the_install_hint(tmp_path):
    env = dict(os.environ, EVONORM_FASHION_MNIST_DIR=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "compare_layers.py"),
                           f"--workdir={tmp_path / 'out'}"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 1
    assert "sudo apt-get install dataset-fashion-mnist" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not HAVE_DATA, reason="Fashion-MNIST not installed")
def test_bad_settings_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown norm-act"):
        compare_layers.run(compare_layers.CompareConfig(layers=("nope",), workdir=str(tmp_path)),
                           log=lambda _: None)
    with pytest.raises(compare_layers.ConfigError, match="without duplicates"):
        compare_layers.run(compare_layers.CompareConfig(layers=("bn_relu", "BN-ReLU"),
                                                        workdir=str(tmp_path)), log=lambda _: None)


@pytest.mark.skipif(not HAVE_DATA, reason="Fashion-MNIST not installed")
def test_bad_flag_is_a_usage_error_not_a_traceback(tmp_path):
    from absl import app, flags

    fv = compare_layers.define_flags(flags.FlagValues())
    fv(["compare_layers", "--depth=9", f"--workdir={tmp_path}"])
    with pytest.raises(app.UsageError, match="6n\\+2"):  # absl prints it and exits 1
        compare_layers.main(["compare_layers"], fv)
