"""Multiply-adds of a registered Model Garden experiment's model, per layer (paper Table 5's MAdds column).

    python scripts/count_madds.py --experiment=maskrcnn_resnetfpn_coco --top=20
    python scripts/count_madds.py --experiment=evonorm_resnet50_imagenet --input_size=224,224 \\
        --params_override=task.model.norm_activation.type=evonorm_s0

Prints a markdown table (``--top`` largest layers, or top-level components with ``--depth=1``) and the
total in billions. Counting convention: :mod:`evonorm.vision.madds`.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags  # noqa: E402

from evonorm import cli  # noqa: E402

PROG = "count_madds"


class CountError(Exception):
    """A usage problem, reported as one line (exit status 1)."""


def define_flags(fv: flags.FlagValues) -> None:
    """This command's flags, on its own FlagValues."""
    flags.DEFINE_string("experiment", None, "registered experiment (ours or Model Garden's)", flag_values=fv)
    flags.DEFINE_string("params_override", None, "config overrides, e.g. "
                        "'task.model.norm_activation.type=evonorm_s0'", flag_values=fv)
    flags.DEFINE_list("input_size", None, "H,W[,C] (default: the experiment's task.model.input_size)",
                      flag_values=fv)
    flags.DEFINE_integer("top", None, "show only the N layers with the most MAdds", flag_values=fv)
    flags.DEFINE_integer("depth", None, "group layers by the first N path components", flag_values=fv)


def _params(fv):
    from official.core import exp_factory  # noqa: PLC0415 - heavy imports after flag parsing
    from official.modeling import hyperparams  # noqa: PLC0415

    import official.vision.registry_imports  # noqa: F401, PLC0415 - Model Garden's experiments
    import evonorm.vision.experiments  # noqa: F401, PLC0415 - ours
    try:
        import evonorm.vision.detection_experiments  # noqa: F401, PLC0415 - Table 5's, once they exist
    except ImportError:
        pass
    if not fv.experiment:
        raise CountError("--experiment is required.")
    if fv.experiment not in exp_factory._REGISTERED_CONFIGS:  # noqa: SLF001 - the registry is a plain dict
        raise CountError(f"unknown experiment {fv.experiment!r} "
                         "(evonorm-train --list_experiments lists them).")
    params = exp_factory.get_exp_config(fv.experiment)
    if fv.params_override:
        try:
            params = hyperparams.override_params_dict(params, fv.params_override, is_strict=True)
        except (KeyError, ValueError, TypeError) as err:
            raise CountError(f"bad --params_override {fv.params_override!r}: {err}") from err
    return params


def count(fv: flags.FlagValues):
    """Builds the experiment's model, prints its per-layer table and total; returns the report."""
    params = _params(fv)
    size = None
    if fv.input_size:
        try:
            size = [int(d) for d in fv.input_size]
        except ValueError as err:
            raise CountError(f"--input_size must be H,W[,C] integers, not {fv.input_size}") from err
        if len(size) not in (2, 3):
            raise CountError(f"--input_size must be H,W[,C], not {fv.input_size}")
        size = size if len(size) == 3 else size + [params.task.model.input_size[-1]]
    from evonorm.vision import madds  # noqa: PLC0415

    start = time.time()
    report = madds.count_experiment(params, size)
    print(report.markdown(top=fv.top, depth=fv.depth))
    print(f"\n{fv.experiment} at {list(params.task.model.input_size)}: {report.total / 1e9:.3f} B MAdds "
          f"({len(report.uncounted)} ops of unknown shape left out; {time.time() - start:.0f} s)")
    return report


def main(argv) -> None:
    """absl main: :func:`count`, with :class:`CountError` as one line and exit status 1."""
    fv = argv if isinstance(argv, flags.FlagValues) else cli.parse_flags(argv, define_flags)
    cli.run_reporting(PROG, count, fv, CountError)


if __name__ == "__main__":
    app.run(main, flags_parser=lambda argv: cli.parse_flags(argv, define_flags))
