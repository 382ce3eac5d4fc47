"""Experiment configs: registration, validation, tiny twins building through Model Garden's task,
weight decay that spares norm-act variables, YAML overrides, Fashion-MNIST records, data checks."""

import glob
import json
import os

import pytest
import tensorflow as tf
from official.core import exp_factory, task_factory
from official.modeling import hyperparams

from evonorm.data import fashion_mnist, records
from evonorm.vision import experiments, registration
from evonorm.vision.backbones import norm_act_variables, weight_decay_variables
from evonorm.vision.classification_task import DataNotFoundError, EvoNormClassificationTask, check_data

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OFFICIAL = os.path.join(REPO, "official")
needs_fashion_mnist = pytest.mark.skipif(
    not os.path.isfile(os.path.join(fashion_mnist.data_dir(), "t10k-labels-idx1-ubyte.gz")),
    reason="Fashion-MNIST IDX files not installed (apt-get install dataset-fashion-mnist)")


def test_every_experiment_is_registered_and_validates():
    names = experiments.experiment_names()
    assert len(names) == 2 * len(experiments.EXPERIMENTS) == 36
    for name in names:
        params = exp_factory.get_exp_config(name)
        params.validate()
        assert params.task.init_checkpoint == ""
        assert params.runtime.enable_xla is False and params.runtime.mixed_precision_dtype == "float32"
        if name.endswith("_tiny"):
            assert params.task.model.input_size == [32, 32, 3]
            assert params.task.train_data.input_path == records.file_pattern("train")
            assert params.trainer.train_steps == experiments.TINY_STEPS
        else:
            assert params.task.train_data.tfds_name == "imagenet2012"
            assert params.task.model.num_classes == 1000
        factory = exp_factory._REGISTERED_CONFIGS[name]  # noqa: SLF001 - the docstring carries the command
        assert "evonorm-train --experiment=" + name in factory.__doc__


def test_paper_settings_follow_the_recipes():
    def lr_cfg(name):
        return exp_factory.get_exp_config(name).trainer.optimizer_config.learning_rate

    r50 = exp_factory.get_exp_config("evonorm_resnet50_imagenet")
    assert r50.task.train_data.global_batch_size == 1024
    assert r50.task.model.norm_activation.type == "evonorm_b0"
    assert lr_cfg("evonorm_resnet50_imagenet").stepwise.values[0] == pytest.approx(0.4)
    assert lr_cfg("evonorm_resnet50_bs32_imagenet").stepwise.values[0] == pytest.approx(0.1 * 32 / 256)
    aug = exp_factory.get_exp_config("evonorm_resnet50_aug_imagenet").task.train_data.aug_type
    assert aug.type == "randaug"
    steps_90 = r50.trainer.train_steps
    assert exp_factory.get_exp_config("evonorm_resnet50_aug_2x_imagenet").trainer.train_steps == 2 * steps_90
    assert lr_cfg("evonorm_resnet50_aug_2x_cos_imagenet").type == "cosine"
    mv2_small = exp_factory.get_exp_config("evonorm_mobilenetv2_bs128_imagenet")
    assert mv2_small.task.train_data.global_batch_size == 128
    assert mv2_small.trainer.optimizer_config.learning_rate.exponential.initial_learning_rate == \
        pytest.approx(0.016 * 128 / 256)
    b5 = exp_factory.get_exp_config("evonorm_efficientnet_b5_imagenet")
    assert b5.task.model.input_size == [456, 456, 3]
    variant = exp_factory.get_exp_config("evonorm_resnet50_b0_no_local_imagenet")
    assert variant.task.model.norm_activation.type == "evonorm_b0_no_local"


def test_norm_act_is_selectable_by_override_and_yaml():
    params = exp_factory.get_exp_config("evonorm_resnet50_imagenet")
    params = hyperparams.override_params_dict(params, "task.model.norm_activation.type=evonorm_s0",
                                              is_strict=True)
    assert params.task.model.norm_activation.type == "evonorm_s0"
    yamls = sorted(glob.glob(os.path.join(OFFICIAL, "*.yaml")))
    assert len(yamls) >= 5
    for path in yamls:
        target = "evonorm_mobilenetv2_imagenet" if "mobilenet" in path else "evonorm_resnet50_imagenet"
        params = hyperparams.override_params_dict(exp_factory.get_exp_config(target), path, is_strict=True)
        params.validate()
    assert not os.path.exists(os.path.join(OFFICIAL, "__init__.py"))  # would shadow tf-models-official


def test_readme_lists_every_experiment_with_its_command():
    with open(os.path.join(OFFICIAL, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for name in experiments.EXPERIMENTS:
        assert f"| `{registration.command(name)}` |" in readme
    assert experiments.markdown_table() in readme  # the README table is the generated one


def _tiny_models():
    """One tiny twin per distinct model config (twins differing only in recipe share a model)."""
    unique = {}
    for name in experiments.experiment_names(tiny=True):
        params = exp_factory.get_exp_config(name)
        unique.setdefault(json.dumps(params.task.model.as_dict(), sort_keys=True), (name, params))
    return list(unique.values())


@pytest.fixture(scope="module")
def built_models():
    """Every distinct tiny model, built through Model Garden's task factory and ``build_model``."""
    built = {}
    for name, params in _tiny_models():
        task = task_factory.get_task(params.task)
        assert isinstance(task, EvoNormClassificationTask)
        built[name] = (params, task.build_model())
    return built


def test_every_tiny_twin_builds_through_the_task(built_models):
    covered = {json.dumps(p.task.model.as_dict(), sort_keys=True) for p, _ in built_models.values()}
    for name in experiments.experiment_names(tiny=True):
        assert json.dumps(exp_factory.get_exp_config(name).task.model.as_dict(), sort_keys=True) in covered
    for name, (params, model) in built_models.items():
        wanted = params.task.model.norm_activation.type
        assert {layer.registry_name for layer in model.submodules
                if hasattr(layer, "registry_name")} == {wanted}, name
        logits = model(tf.zeros([2, 32, 32, 3]), training=False)
        assert logits.shape == (2, 10)


def test_weight_decay_excludes_norm_act_variables(built_models):
    for name, (params, model) in built_models.items():
        assert params.task.losses.l2_weight_decay > 0
        with tf.GradientTape() as tape:
            penalty = tf.add_n(model.losses)
        grads = tape.gradient(penalty, model.trainable_variables)
        decayed = {id(v) for v, g in zip(model.trainable_variables, grads) if g is not None}
        norm_act = {id(v) for v in norm_act_variables(model)}
        assert norm_act and not decayed & norm_act, name
        # Every decayed variable is one the reference code decays; all kernels are decayed.
        assert decayed <= {id(v) for v in weight_decay_variables(model)}, name
        kernels = {id(v) for v in model.trainable_variables if "kernel" in v.name}
        assert kernels <= decayed, name
        # The penalty is wd * sum(||w||^2 / 2) over the decayed variables (Model Garden's convention).
        expected = params.task.losses.l2_weight_decay * tf.add_n(
            [tf.nn.l2_loss(v) for v in model.trainable_variables if id(v) in decayed])
        assert float(penalty) == pytest.approx(float(expected), rel=1e-4)


@needs_fashion_mnist
def test_records_are_written_once_in_model_garden_format(tmp_path):
    out = str(tmp_path / "fm")
    patterns = records.prepare_fashion_mnist(out, limit=24, shards={"train": 2})
    assert records.is_prepared(out, limit=24) and not records.is_prepared(out, limit=None)
    before = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(out, "*"))}
    assert records.prepare_fashion_mnist(out, limit=24, shards={"train": 2}) == patterns
    assert {p: os.path.getmtime(p) for p in glob.glob(os.path.join(out, "*"))} == before  # idempotent
    assert not glob.glob(os.path.join(out, ".tmp-*"))
    files = sorted(glob.glob(patterns["train"]))
    assert len(files) == 2
    (x, y) = fashion_mnist.load_split("train")
    example = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(files[0]))).numpy())
    png = example.features.feature[records.IMAGE_KEY].bytes_list.value[0]
    assert (tf.io.decode_png(png).numpy() == x[0]).all()
    assert example.features.feature[records.LABEL_KEY].int64_list.value[0] == y[0]


def test_missing_data_errors_say_how_to_get_it(tmp_path, monkeypatch):
    params = exp_factory.get_exp_config("evonorm_resnet50_imagenet_tiny")
    monkeypatch.setenv(records.ENV_VAR, str(tmp_path))
    params.override({"task": {"train_data": {"input_path": records.file_pattern("train")}}})
    with pytest.raises(DataNotFoundError, match="python -m evonorm.data.records"):
        check_data(params.task.train_data)
    imagenet = exp_factory.get_exp_config("evonorm_resnet50_imagenet")
    imagenet.override({"task": {"train_data": {"tfds_data_dir": str(tmp_path / "tfds")}}})
    with pytest.raises(DataNotFoundError, match="not prepared.*downloads/manual"):
        check_data(imagenet.task.train_data)


def test_rescale_schedule_stretches_every_step_count():
    params = experiments.rescale_schedule(exp_factory.get_exp_config("evonorm_resnet50_imagenet_tiny"), 200)
    opt = params.trainer.optimizer_config
    assert params.trainer.train_steps == 200
    assert opt.learning_rate.stepwise.boundaries == [60, 130, 170]
    assert opt.warmup.linear.warmup_steps == 10
    cosine = exp_factory.get_exp_config("evonorm_resnet50_aug_2x_cos_imagenet_tiny")
    cosine = experiments.rescale_schedule(cosine, 40)
    assert cosine.trainer.optimizer_config.learning_rate.cosine.decay_steps == 40
    with pytest.raises(ValueError, match="too short"):
        experiments.rescale_schedule(exp_factory.get_exp_config("evonorm_resnet50_imagenet_tiny"), 2)
