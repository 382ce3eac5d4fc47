"""``evonorm-train``: trains and evaluates a registered Model Garden experiment (ours or Model Garden's).

Driven by Model Garden's Orbit experiment runner (``official.core.train_lib``): checkpoints and
TensorBoard summaries go to ``--model_dir``, and a rerun with the same ``--model_dir`` resumes from
the latest checkpoint.
Examples::

    evonorm-train --list_experiments
    evonorm-train --experiment=evonorm_resnet50_imagenet_tiny --mode=train_and_eval --model_dir=/tmp/t
    evonorm-train --experiment=evonorm_resnet50_imagenet --mode=train_and_eval --model_dir=gs://b/r50 \\
        --config_file=official/resnet50_evonorm_s0.yaml --config_file=official/tpu.yaml --tpu=my-tpu
    TF_CONFIG='{"cluster": {"worker": ["h0:12345", "h1:12345"]}, "task": {"type": "worker", "index": 0}}' \\
        evonorm-train --experiment=... --strategy=multi_worker_mirrored --model_dir=/shared/run

Strategies come from :mod:`evonorm.distribute` (shared with the other entry points); the Orbit runner
is :class:`evonorm.vision.orbit_runner.Runner`, which lets every worker of a multi-worker run resume.

Nothing is downloaded: TFDS datasets must be prepared already, and the Fashion-MNIST records of the
``_tiny`` experiments are written from the local IDX files (``--prepare_data``, on by default).
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags, logging

from evonorm import cli, distribute

MODES = ("train", "eval", "train_and_eval")


class TrainError(Exception):
    """A usage or environment problem, reported as one clear line (exit status 1)."""


def define_flags(fv: flags.FlagValues) -> None:
    """Defines the driver's flags on ``fv`` (a private FlagValues: no clash with other absl tools)."""
    flags.DEFINE_string("experiment", None, "registered experiment name (see --list_experiments)",
                        flag_values=fv)
    flags.DEFINE_multi_string("config_file", None, "YAML override file(s), applied in order",
                              flag_values=fv)
    flags.DEFINE_string("params_override", None, "overrides after the config files, e.g. "
                        "'task.model.norm_activation.type=evonorm_s0,trainer.train_steps=100'",
                        flag_values=fv)
    flags.DEFINE_enum("mode", "train_and_eval", MODES, "what to run", flag_values=fv)
    flags.DEFINE_string("model_dir", None, "checkpoints, summaries and params.yaml (created if missing)",
                        flag_values=fv)
    flags.DEFINE_integer("train_steps", None, "train this many steps, stretching the learning-rate "
                         "and warmup schedules to match (plain trainer.train_steps does not)",
                         flag_values=fv)
    flags.DEFINE_integer("seed", None, "seed of Python, NumPy and TensorFlow (weight init, data order, "
                         "augmentation) for repeated runs; unset: not seeded", flag_values=fv)
    distribute.define_flags(fv)
    flags.DEFINE_bool("prepare_data", True, "write the Fashion-MNIST records of _tiny experiments from "
                      "the local IDX files when missing (no download)", flag_values=fv)
    flags.DEFINE_bool("list_experiments", False, "print the registered experiments and exit",
                      flag_values=fv)


def parse_flags(argv) -> flags.FlagValues:
    """Parses ``argv`` into this command's own FlagValues (see :mod:`evonorm.cli`)."""
    return cli.parse_flags(argv, define_flags)


def _our_suites():
    """The modules registering our experiments: classification (Tables 3, 4, 7), detection (Table 5)."""
    from evonorm.vision import experiments  # noqa: PLC0415 - heavy imports after flag parsing
    from evonorm.vision.detection import experiments as detection  # noqa: PLC0415
    return experiments, detection


def _our_names(tiny: bool | None = None) -> list:
    return [name for suite in _our_suites() for name in suite.experiment_names(tiny=tiny)]


def _registry():
    from official.core import exp_factory  # noqa: PLC0415 - heavy imports after flag parsing

    _our_suites()  # registers our experiments
    return exp_factory._REGISTERED_CONFIGS  # noqa: SLF001 - the registry is a plain dict


def list_experiments() -> tuple[list, list]:
    """(ours, Model Garden's) registered experiment names."""
    import official.vision.registry_imports  # noqa: F401, PLC0415 - registers Model Garden's experiments

    ours = _our_names()
    return ours, sorted(name for name in _registry() if name not in set(ours))


def _print_experiments() -> None:
    classification, detection = _our_suites()
    _, theirs = list_experiments()
    print("evonorm classification experiments (paper Tables 3, 4, 7; <name>_tiny = a few CPU steps on "
          "Fashion-MNIST):")
    for name in classification.experiment_names(tiny=False):
        print(f"  {name}  (+ {name}_tiny)")
    print("evonorm detection experiments (paper Table 5, Mask R-CNN on COCO; <name>_tiny = CPU twin on the "
          "offline COCO-format sample):")
    for name in detection.experiment_names(tiny=False):
        print(f"  {name}  (+ {name}_tiny)")
    print("Model Garden experiments:")
    for name in theirs:
        print(f"  {name}")


def build_params(fv: flags.FlagValues):
    """The locked ExperimentConfig from --experiment, --config_file, --params_override and runtime flags."""
    registry = _registry()
    if fv.experiment not in registry:
        import official.vision.registry_imports  # noqa: F401, PLC0415 - maybe one of Model Garden's
        if fv.experiment not in registry:
            raise TrainError(f"unknown experiment {fv.experiment!r}. Ours: "
                             f"{', '.join(_our_names(tiny=False))} (each also as "
                             f"<name>_tiny); --list_experiments prints every registered one.")
    from official.core import exp_factory  # noqa: PLC0415
    from official.modeling import hyperparams  # noqa: PLC0415

    params = exp_factory.get_exp_config(fv.experiment)
    for path in fv.config_file or []:
        if not os.path.isfile(path):
            raise TrainError(f"--config_file {path!r} does not exist.")
        try:
            params = hyperparams.override_params_dict(params, path, is_strict=True)
        except (KeyError, ValueError, TypeError) as err:
            raise TrainError(f"--config_file {path!r} does not fit {fv.experiment!r}: {err}") from err
    runtime = {"tpu": fv.tpu or params.runtime.tpu}
    if fv.strategy:
        runtime["distribution_strategy"] = fv.strategy
    if fv.num_gpus is not None:
        runtime["num_gpus"] = fv.num_gpus
    params.override({"runtime": runtime}, is_strict=True)
    if fv.train_steps is not None:
        from evonorm.vision.experiments import rescale_schedule  # noqa: PLC0415

        try:
            rescale_schedule(params, fv.train_steps)
        except ValueError as err:
            raise TrainError(f"--train_steps: {err}") from err
    if fv.params_override:
        try:
            params = hyperparams.override_params_dict(params, fv.params_override, is_strict=True)
        except (KeyError, ValueError, TypeError) as err:
            raise TrainError(f"bad --params_override {fv.params_override!r}: {err}") from err
    try:
        params.validate()
    except (KeyError, ValueError, AssertionError) as err:
        raise TrainError(f"invalid experiment config: {err}") from err
    params.lock()
    return params


def build_strategy(runtime, fv: flags.FlagValues):
    """The strategy of ``runtime`` (after flag overrides), built by :mod:`evonorm.distribute`."""
    try:
        return distribute.build_strategy(
            runtime.distribution_strategy, tpu=runtime.tpu or "", num_gpus=runtime.num_gpus,
            num_cpu_replicas=fv.num_cpu_replicas, all_reduce_alg=runtime.all_reduce_alg,
            worker_timeout=fv.worker_timeout)
    except distribute.StrategyError as err:
        raise TrainError(str(err)) from err


def _local_datasets():
    """(folder, is_prepared, prepare, errors) of the offline datasets evonorm-train can write itself."""
    from evonorm.data import coco, coco_sample, fashion_mnist, records  # noqa: PLC0415

    return [(records.default_dir(), records.is_prepared, records.prepare_fashion_mnist,
             (fashion_mnist.FashionMNISTNotFoundError, fashion_mnist.FashionMNISTFormatError)),
            (coco_sample.default_dir(), coco_sample.is_built, coco_sample.build_sample,
             (coco.CocoDataError,))]


def prepare_inputs(params, mode: str, prepare_data: bool) -> None:
    """Writes missing offline records (Fashion-MNIST, the COCO sample) when allowed, then checks every
    input the mode reads."""
    from evonorm.vision.classification_task import DataNotFoundError, check_data  # noqa: PLC0415
    from evonorm.vision.detection import task as detection  # noqa: PLC0415

    used = ([params.task.train_data] if "train" in mode else []) + (
        [params.task.validation_data] if "eval" in mode else [])
    for folder, is_prepared, prepare, errors in _local_datasets():
        ours = os.path.join(folder, "")
        if prepare_data and any(str(d.input_path).startswith(ours) for d in used) and not is_prepared():
            logging.info("Writing the offline records to %s (once).", ours)
            try:
                prepare()
            except errors as err:
                raise TrainError(str(err)) from err
    is_detection = isinstance(params.task, detection.EvoNormMaskRCNNTask)
    for data in used:
        try:
            if is_detection:
                detection.check_detection_data(params.task, data)
            else:
                check_data(data)
        except DataNotFoundError as err:
            raise TrainError(str(err)) from err


def train(fv: flags.FlagValues) -> dict:
    """Runs the experiment of parsed flags ``fv``; returns a summary with the last train/eval logs."""
    if fv.list_experiments:
        _print_experiments()
        return {}
    if not fv.experiment:
        raise TrainError("--experiment is required (--list_experiments prints the choices).")
    if not fv.model_dir:
        raise TrainError("--model_dir is required (checkpoints, summaries and params.yaml go there).")
    params = build_params(fv)
    strategy = build_strategy(params.runtime, fv)
    prepare_inputs(params, fv.mode, fv.prepare_data)

    import tensorflow as tf  # noqa: PLC0415
    from official.core import task_factory, train_utils  # noqa: PLC0415
    from official.modeling import performance  # noqa: PLC0415

    from evonorm.vision.orbit_runner import InputRecorder, Runner  # noqa: PLC0415

    chief = distribute.is_chief(strategy)
    tf.io.gfile.makedirs(fv.model_dir)
    if "train" in fv.mode and chief:  # one writer: workers share model_dir
        train_utils.serialize_config(params, fv.model_dir)
    if params.runtime.mixed_precision_dtype:
        performance.set_mixed_precision_policy(params.runtime.mixed_precision_dtype)
    logs = {"train": {}, "eval": {}}

    def keep(kind):
        return lambda output: logs[kind].update(
            {k: float(v) for k, v in output.items() if getattr(v, "shape", ()) == ()})

    if fv.seed is not None:
        import tf_keras  # noqa: PLC0415

        tf_keras.utils.set_random_seed(fv.seed)
    start = time.time()
    with strategy.scope():
        task = task_factory.get_task(params.task, logging_dir=fv.model_dir)
    inputs = InputRecorder(task)
    runner = None
    try:
        runner = Runner(distribution_strategy=strategy, task=task, mode=fv.mode, params=params,
                        model_dir=fv.model_dir, train_actions=[keep("train")], eval_actions=[keep("eval")])
        model, _ = runner.run()
    except Exception as err:
        message = distribute.describe_failure(err, strategy)
        if message:
            raise TrainError(message) from err
        raise
    finally:
        if runner is not None:
            runner.cleanup()
    summary = {"experiment": fv.experiment, "mode": fv.mode, "seed": fv.seed,
               "checkpoint_step": int(runner.trainer.global_step.numpy()),
               "replicas": strategy.num_replicas_in_sync, "worker": distribute.worker_label(strategy),
               "chief": chief, "inputs": inputs.pipelines, "wall_s": round(time.time() - start, 1),
               "params": int(model.count_params()), **logs}
    if chief:
        with tf.io.gfile.GFile(os.path.join(fv.model_dir, "evonorm_train_summary.json"), "w") as f:
            f.write(json.dumps(summary, indent=1))
    print(json.dumps(summary))
    return summary


def main(argv) -> None:
    """absl main: runs :func:`train`, turning :class:`TrainError` into one line and exit status 1."""
    fv = argv if isinstance(argv, flags.FlagValues) else parse_flags(argv)
    cli.run_reporting("evonorm-train", train, fv, TrainError)


def run() -> None:
    """Console entry point ``evonorm-train``."""
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
