"""Helpers shared by the evonorm-train tests: a small real-data config fixture and the CLI launcher."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from evonorm.data import fashion_mnist, records

HAVE_FASHION_MNIST = os.path.isfile(os.path.join(fashion_mnist.data_dir(), "t10k-labels-idx1-ubyte.gz"))
NO_DATA = "Fashion-MNIST IDX files not installed (apt-get install dataset-fashion-mnist)"
needs_fashion_mnist = pytest.mark.skipif(not HAVE_FASHION_MNIST, reason=NO_DATA)

TINY = "evonorm_resnet50_imagenet_tiny"
# Short loops so the run checkpoints, evaluates and stops within a few seconds.
FAST = ("trainer.steps_per_loop=2,trainer.checkpoint_interval=2,trainer.summary_interval=2,"
        "trainer.validation_interval=8,trainer.validation_steps=2")


@pytest.fixture(scope="session")
def data_yaml(tmp_path_factory):
    """A --config_file pointing the tiny experiments at a small subset of the real records."""
    if not HAVE_FASHION_MNIST:
        pytest.skip(NO_DATA)
    root = tmp_path_factory.mktemp("records")
    patterns = records.prepare_fashion_mnist(str(root / "fm"), limit=128)
    path = root / "data.yaml"
    path.write_text("task:\n  train_data:\n    input_path: '{train}'\n  validation_data:\n"
                    "    input_path: '{test}'\n".format(**patterns))
    return str(path)


def command():
    """The installed console script when present, else the same module through this interpreter."""
    script = shutil.which("evonorm-train")
    return [script] if script else [sys.executable, "-m", "evonorm.vision.train_main"]


def cli_env(**extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **extra)


def run_cli(*args, timeout=240):
    return subprocess.run(command() + list(args), capture_output=True, text=True, timeout=timeout,
                          env=cli_env())


def summary_of(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def call_main(argv, capsys):
    """Runs evonorm-train in this process; returns (exit code, stdout, stderr)."""
    from evonorm.vision import train_main  # noqa: PLC0415

    try:
        train_main.main(train_main.parse_flags(["evonorm-train"] + argv))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err
