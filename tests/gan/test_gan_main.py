"""``evonorm-gan`` end to end: a tiny run in a subprocess, its resume, eval/sample modes, usage errors."""

import glob
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from evonorm.gan import configs, main

CONFIG = "fmnist32_evonorm_s0_tiny"


def _cli(*args, cache, check=True):
    """Runs ``evonorm-gan`` (this interpreter's), returns (returncode, stdout, stderr)."""
    env = {**os.environ, "EVONORM_CACHE_DIR": cache, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-c", "from evonorm.gan.main import run; run()", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done.returncode, done.stdout, done.stderr


def _summary(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, feature_cache):
    """A workdir trained by ``evonorm-gan --config=fmnist32_evonorm_s0_tiny`` (20 steps)."""
    workdir = str(tmp_path_factory.mktemp("gan") / "run")
    _, out, _ = _cli(f"--config={CONFIG}", f"--workdir={workdir}", cache=feature_cache)
    return workdir, _summary(out)


def test_tiny_run_writes_everything(trained):
    workdir, summary = trained
    assert (summary["start_step"], summary["final_step"], summary["resumed"]) == (0, 20, False)
    assert all(v == v for v in summary["losses"].values())  # finite (not NaN)
    assert os.path.isfile(os.path.join(workdir, "checkpoints", "ckpt-20.index"))
    assert glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))
    with open(os.path.join(workdir, "metrics.json")) as f:
        records = json.load(f)
    assert records[-1]["step"] == 20 and records[-1]["feature_network"] == "fashion_mnist_classifier"
    assert records[-1]["num_samples"] == 256 and records[-1]["fid"] > 0
    with Image.open(os.path.join(workdir, "samples", "step_000020.png")) as grid:
        assert grid.size == (10 * 32, 10 * 32) and grid.mode == "L"  # 10 classes x 10 fixed z
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["model"]["norm"] == "evonorm_s0"


def test_rerun_resumes_from_the_saved_step(trained, feature_cache):
    workdir, _ = trained
    _, out, _ = _cli(f"--config={CONFIG}", f"--workdir={workdir}", "--config_override=train_steps=25",
                     cache=feature_cache)
    summary = _summary(out)
    assert "Resumed from step 20" in out
    assert (summary["start_step"], summary["final_step"], summary["steps_run"]) == (20, 25, 5)
    with open(os.path.join(workdir, "metrics.json")) as f:
        assert [r["step"] for r in json.load(f)] == [20, 25]


def test_sample_and_eval_modes(trained, feature_cache):
    workdir, _ = trained
    path = os.path.join(workdir, "grid.png")
    _, out, _ = _cli(f"--config={CONFIG}", f"--workdir={workdir}", "--mode=sample", "--num_samples=30",
                     f"--sample_path={path}", cache=feature_cache)
    assert _summary(out)["num"] == 30
    with Image.open(path) as grid:
        assert grid.size == (3 * 32, 10 * 32)  # 3 per class, one row per class
    _, out, _ = _cli(f"--config={CONFIG}", f"--workdir={workdir}", "--mode=eval", cache=feature_cache)
    record = _summary(out)
    assert record["mode"] == "eval" and record["feature_network"] == "fashion_mnist_classifier"
    assert record["step"] in (20, 25) and record["fid"] > 0


def test_changed_config_is_refused(trained, feature_cache):
    workdir, _ = trained
    code, _, err = _cli(f"--config={CONFIG}", f"--workdir={workdir}", "--config_override=model.ch=4",
                        cache=feature_cache, check=False)
    assert code == 1 and "model.ch: 2 -> 4" in err and "cannot be resumed" in err


def _execute(*args):
    return main.execute(main.parse_flags(["evonorm-gan", *args]))


def test_list_configs(capsys):
    _execute("--list_configs")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(configs.CONFIGS)
    assert any(line.startswith("imagenet128_evonorm_b0 ") and "Table 6" in line for line in lines)


@pytest.mark.parametrize("args, message", [
    (["--config=nope", "--workdir=/tmp/x"], "known configs: fmnist32_bn_relu"),
    ([f"--config={CONFIG}"], "--workdir is required"),
    (["--workdir=/tmp/x"], "--config is required"),
    ([f"--config={CONFIG}", "--workdir=/tmp/x", "--config_override=bogus=1"], "unknown config field 'bogus'"),
])
def test_usage_errors(args, message):
    with pytest.raises(main.GANUsageError, match=message):
        _execute(*args)


def test_missing_data_names_the_apt_command(tmp_path, monkeypatch, feature_cache):
    monkeypatch.setenv("EVONORM_FASHION_MNIST_DIR", str(tmp_path / "nothing"))
    code, _, err = _cli(f"--config={CONFIG}", f"--workdir={tmp_path / 'run'}", cache=feature_cache,
                        check=False)
    assert code == 1 and "apt-get install dataset-fashion-mnist" in err


@pytest.mark.slow
def test_two_cpu_replicas_with_synchronized_batch_norm(tmp_path, feature_cache):
    workdir = str(tmp_path / "mirrored")
    _, out, _ = _cli("--config=fmnist32_bn_relu_tiny", f"--workdir={workdir}", "--strategy=mirrored",
                     "--num_cpu_replicas=2", "--config_override=train_steps=6,eval_every=6",
                     cache=feature_cache)
    summary = _summary(out)
    assert summary["replicas"] == 2 and summary["final_step"] == 6
    assert all(v == v for v in summary["losses"].values())
