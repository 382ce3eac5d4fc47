"""``evonorm-gan``: trains, evaluates and samples BigGAN-deep with EvoNorms (paper Sec. 5.3, Table 6).

Examples::

    evonorm-gan --list_configs
    evonorm-gan --config=fmnist32_evonorm_s0_tiny --workdir=/tmp/gan_tiny            # seconds
    evonorm-gan --config=fmnist32_evonorm_s0 --workdir=/tmp/s0 --config_override=seed=1
    evonorm-gan --config=fmnist32_evonorm_s0 --workdir=/tmp/s0 --mode=eval
    evonorm-gan --config=fmnist32_evonorm_s0 --workdir=/tmp/s0 --mode=sample --num_samples=100 \\
        --sample_path=/tmp/s0/grid.png
    evonorm-gan --config=imagenet128_evonorm_b0 --workdir=gs://b/b0 --strategy=tpu --tpu=NAME \\
        --feature_network=/path/to/inception --config_override=data_dir=gs://b/tfds

A rerun with the same ``--workdir`` resumes from its latest checkpoint (``train_steps`` and the other
loop fields may change; anything else is refused, naming the fields). The configs and their expected
times live in :mod:`evonorm.gan.configs`; the loop in :mod:`evonorm.gan.train`. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os

from absl import app, flags, logging

from evonorm import cli, distribute

MODES = ("train", "eval", "sample")


class GANUsageError(Exception):
    """A usage or environment problem, printed as one line (exit status 1)."""


def define_flags(fv: flags.FlagValues) -> None:
    """Defines the command's flags on ``fv`` (a private FlagValues: no clash with other absl tools)."""
    flags.DEFINE_string("config", None, "registered config name (see --list_configs)", flag_values=fv)
    flags.DEFINE_string("config_override", None, "comma-separated key=value overrides, dotted keys into "
                        "the model, e.g. 'model.ch=8,train_steps=50,seed=1'", flag_values=fv)
    flags.DEFINE_string("workdir", None, "checkpoints, config.json, metrics.json, samples/, tensorboard/",
                        flag_values=fv)
    flags.DEFINE_enum("mode", "train", MODES, "train (and evaluate as configured), eval (the latest "
                      "checkpoint), or sample (write --num_samples images to --sample_path)", flag_values=fv)
    flags.DEFINE_string("feature_network", None, "override the config's feature network: "
                        "'fashion_mnist_classifier' or a path to local Inception-v3 weights",
                        flag_values=fv)
    flags.DEFINE_integer("num_samples", 100, "--mode=sample: how many images", flag_values=fv)
    flags.DEFINE_string("sample_path", None, "--mode=sample: output .png (grid) or .npz (default: "
                        "WORKDIR/samples/sample.png)", flag_values=fv)
    flags.DEFINE_bool("list_configs", False, "print each config's name and one-line description, exit",
                      flag_values=fv)
    distribute.define_flags(fv, default="one_device")


def parse_flags(argv) -> flags.FlagValues:
    """Parses ``argv`` into this command's own FlagValues (see :mod:`evonorm.cli`)."""
    return cli.parse_flags(argv, define_flags)


def list_configs() -> list[str]:
    """``'name  description'`` lines, one per registered config."""
    from evonorm.gan import configs  # noqa: PLC0415

    width = max(len(n) for n in configs.config_names())
    return [f"{name:<{width}}  {configs.one_line(configs.CONFIGS[name])}" for name in configs.config_names()]


def resolve_config(fv: flags.FlagValues):
    """The GANConfig of --config, --config_override and --feature_network."""
    from evonorm.gan import configs  # noqa: PLC0415

    try:
        config = configs.get_config(fv.config, fv.config_override)
        if fv.feature_network:
            config = configs.apply_overrides(config, {"feature_network": fv.feature_network})
    except KeyError as err:
        raise GANUsageError(err.args[0]) from err
    except ValueError as err:
        raise GANUsageError(f"bad --config_override: {err}") from err
    return config


def build_strategy(fv: flags.FlagValues):
    """The strategy of the flags, from :mod:`evonorm.distribute`."""
    try:
        return distribute.build_strategy(fv.strategy or "one_device", tpu=fv.tpu or "",
                                         num_gpus=fv.num_gpus or 0, num_cpu_replicas=fv.num_cpu_replicas,
                                         worker_timeout=fv.worker_timeout)
    except distribute.StrategyError as err:
        raise GANUsageError(str(err)) from err


def execute(fv: flags.FlagValues) -> dict:
    """Runs the mode of parsed flags ``fv``; returns (and prints as the last line) a JSON summary."""
    if fv.list_configs:
        print("\n".join(list_configs()))
        return {}
    if not fv.config:
        raise GANUsageError("--config is required (--list_configs prints the choices).")
    if not fv.workdir:
        raise GANUsageError("--workdir is required (checkpoints, metrics and samples go there).")
    config = resolve_config(fv)
    strategy = build_strategy(fv)  # before any other TensorFlow work: one strategy per process

    from evonorm.data import fashion_mnist  # noqa: PLC0415
    from evonorm.gan import train  # noqa: PLC0415

    try:
        if fv.mode == "train":
            result = train.train_and_evaluate(config, fv.workdir, strategy)
        elif fv.mode == "eval":
            result = train.evaluate(config, fv.workdir, strategy)
        else:
            path = fv.sample_path or os.path.join(fv.workdir, "samples", "sample.png")
            result = train.sample(config, fv.workdir, fv.num_samples, path, strategy)
    except (train.GANError, fashion_mnist.FashionMNISTNotFoundError,
            fashion_mnist.FashionMNISTFormatError) as err:
        raise GANUsageError(str(err)) from err
    except Exception as err:
        message = distribute.describe_failure(err, strategy)
        if message:
            raise GANUsageError(message) from err
        raise
    result = {"config": fv.config, "mode": fv.mode, **result}
    print(json.dumps(result), flush=True)
    return result


def main(argv) -> None:
    """absl main: :func:`execute`, with :class:`GANUsageError` as one line and exit status 1."""
    fv = argv if isinstance(argv, flags.FlagValues) else parse_flags(argv)
    if not flags.FLAGS["verbosity"].present:
        # TensorFlow's per-checkpoint INFO lines would bury the progress lines; --verbosity=0 shows them.
        logging.set_verbosity(logging.WARNING)
    cli.run_reporting("evonorm-gan", execute, fv, GANUsageError)


def run() -> None:
    """Console entry point ``evonorm-gan``."""
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
