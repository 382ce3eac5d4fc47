"""The evonorm-train driver: listing, clear failures, a real tiny train_and_eval run that checkpoints
and resumes, and one training step under a 2-replica MirroredStrategy (in its own process)."""

import os

import pytest

from evonorm.data import records

from train_helpers import data_yaml  # noqa: F401 - a fixture
from train_helpers import FAST, TINY, call_main, needs_fashion_mnist, run_cli, summary_of

pytestmark = needs_fashion_mnist


def test_list_experiments_includes_ours_and_model_gardens(capsys):
    code, out, _ = call_main(["--list_experiments"], capsys)
    assert code == 0
    assert "evonorm_resnet50_imagenet  (+ evonorm_resnet50_imagenet_tiny)" in out
    assert "evonorm_mobilenetv2_bs128_imagenet" in out and "resnet_imagenet" in out


@pytest.mark.parametrize("argv,message", [
    (["--experiment=no_such_thing", "--model_dir=/tmp/x"], "unknown experiment 'no_such_thing'. Ours: "
     "evonorm_resnet50_imagenet"),
    (["--experiment=" + TINY], "--model_dir is required"),
    (["--experiment=" + TINY, "--model_dir=/tmp/x", "--strategy=tpu"], "--strategy=tpu needs --tpu="),
    (["--experiment=" + TINY, "--model_dir=/tmp/x", "--strategy=tpu", "--tpu=grpc://127.0.0.1:1"],
     "no TPU answers at --tpu=grpc://127.0.0.1:1: Connection refused"),
    (["--experiment=" + TINY, "--model_dir=/tmp/x", "--strategy=multi_worker_mirrored"],
     "needs TF_CONFIG in every worker's environment"),
    (["--experiment=" + TINY, "--model_dir=/tmp/x", "--strategy=mirrored", "--num_gpus=4"],
     "--num_gpus=4 but this machine has 0 GPU"),
    (["--experiment=" + TINY, "--model_dir=/tmp/x", "--config_file=/nonexistent.yaml"], "does not exist"),
    (["--experiment=" + TINY, "--model_dir=/tmp/x", "--params_override=task.model.no_field=1"],
     "bad --params_override"),
])
def test_bad_requests_fail_fast_with_one_clear_line(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code, _, err = call_main(argv, capsys)
    assert code == 1
    assert err.startswith("evonorm-train: error: ") and message in err


def test_missing_records_without_preparation_say_how_to_get_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(records.ENV_VAR, str(tmp_path))
    code, _, err = call_main(["--experiment=" + TINY, f"--model_dir={tmp_path / 'm'}", "--noprepare_data"], capsys)
    assert code == 1 and "python -m evonorm.data.records" in err
    assert not os.path.exists(tmp_path / "m")


def test_train_and_eval_checkpoints_then_resumes(tmp_path, data_yaml):
    model_dir = str(tmp_path / "run")
    first = summary_of(run_cli(f"--experiment={TINY}", "--mode=train_and_eval", f"--model_dir={model_dir}",
                               f"--config_file={data_yaml}",
                               "--train_steps=8", f"--params_override={FAST}"))
    assert first["checkpoint_step"] == 8 and first["replicas"] == 1
    assert 0.0 <= first["eval"]["accuracy"] <= 1.0 and first["train"]["training_loss"] > 0
    assert os.path.isfile(os.path.join(model_dir, "params.yaml"))
    assert os.listdir(os.path.join(model_dir, "train"))  # TensorBoard summaries
    second = run_cli(f"--experiment={TINY}", "--mode=train", f"--model_dir={model_dir}",
                     f"--config_file={data_yaml}", f"--params_override={FAST},trainer.train_steps=10")
    assert summary_of(second)["checkpoint_step"] == 10
    assert "restored from checkpoint" in second.stderr + second.stdout
    assert "training until step 10" in second.stderr + second.stdout and "step:      8" in second.stderr


def test_one_step_under_two_replica_mirrored_strategy(tmp_path, data_yaml):
    # Its own process: a second MirroredStrategy in one process breaks collectives.
    result = run_cli(f"--experiment={TINY}", "--mode=train", f"--model_dir={tmp_path / 'mirrored'}",
                     "--strategy=mirrored", "--num_cpu_replicas=2", f"--config_file={data_yaml}",
                     "--params_override=trainer.train_steps=1,trainer.steps_per_loop=1,"
                     "trainer.checkpoint_interval=1,trainer.summary_interval=1")
    summary = summary_of(result)
    assert summary["replicas"] == 2 and summary["checkpoint_step"] == 1
    assert summary["train"]["training_loss"] > 0
