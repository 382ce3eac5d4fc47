"""BigGAN-deep experiment configs as code: the paper's Table 6 runs and their CPU-sized twins.

``CONFIGS`` maps a name to a :class:`GANConfig`; ``get_config(name, overrides)`` returns one, with
``key=value`` overrides (dotted keys reach into the model: ``model.ch=8,train_steps=50``).

Families (``<layer>`` is one of ``bn_relu, evonorm_b0, evonorm_s0, gn_relu, ln_relu, pn_relu``):

- ``imagenet128_<layer>`` — paper scale (EvoNorms paper Sec. 5.3, Table 6): BigGAN-deep 128x128, ch = 128,
  z in R^128, batch 2048, Adam(0, 0.999) with G 5e-5 / D 2e-4, 2 D steps per G step, EMA 0.9999 from
  step 20k, 250k steps (compare_gan's schedule). GN-ReLU uses 16 groups (paper), EvoNorm-S0 32 (the
  authors' reference default); both divide every norm's channels at 128 px (smallest: 64). Needs TFDS
  ``imagenet2012`` prepared by hand and a local Inception network (``--feature_network=/path``), a TPU pod
  or a multi-GPU cluster, and days. ``paper`` holds Table 6 (median / best of 3 seeds; "best" is missing
  where the paper gives one number).
- ``imagenet256_bn_relu`` — BigGAN-deep at 256 px (G and D lr 2.5e-5, BigGAN's -deep 256 setting).
- ``fmnist32_<layer>`` — CPU twins on Fashion-MNIST padded to 32x32x1, 10 classes (research note 5.3):
  ch = 16 (widths 64, bottlenecks 16), batch 32, SA-GAN learning rates (G 1e-4 / D 4e-4, BigGAN's finding
  for small batches), 1 D step, EMA 0.99 from step 100 (half-life 69 steps: at 0.999 the EMA generator
  of step 600 would still hold 0.999^500 = 61% of step 100's weights), 600 steps, evaluated every 200 on
  10k samples against the 10k test images. **Deviation:** GN-ReLU and EvoNorm-S0 use 8 groups (2 channels
  per group in the 16-channel bottlenecks) instead of the paper's 16 / reference 32, which do not divide 16 sensibly.
  Metrics use a Fashion-MNIST classifier, not Inception: they are comparable between these runs only.
- ``fmnist32_<layer>_tiny`` — seconds-long smoke runs for tests (ch = 2, 20 steps, 256 eval samples).
"""

from __future__ import annotations

import ast
import dataclasses
import re
from typing import Any

from evonorm.gan.biggan import BigGANConfig

LAYERS = ("bn_relu", "evonorm_b0", "evonorm_s0", "gn_relu", "ln_relu", "pn_relu")

# Table 6 of the EvoNorms paper: IS and FID on ImageNet 128x128, median / best over 3 seeds.
TABLE6 = {
    "bn_relu": dict(is_median=118.77, is_best=124.01, fid_median=7.85, fid_best=7.29),
    "evonorm_b0": dict(is_median=101.13, is_best=113.63, fid_median=6.91, fid_best=5.87),
    "gn_relu": dict(is_median=99.09, is_best=None, fid_median=8.14, fid_best=None),
    "ln_relu": dict(is_median=91.56, is_best=None, fid_median=8.35, fid_best=None),
    "pn_relu": dict(is_median=88.58, is_best=None, fid_median=10.41, fid_best=None),
    "evonorm_s0": dict(is_median=104.64, is_best=113.96, fid_median=6.86, fid_best=6.26),
}
# A classifier trained on 5k examples for 1 epoch (seconds, cached): enough to exercise the metrics.
TINY_FEATURE_NETWORK = "fashion_mnist_classifier?epochs=1&train_limit=5000"
# Fields a resumed run may change: they steer the loop, not what is being trained.
RESUMABLE_FIELDS = ("train_steps", "eval_every", "checkpoint_every", "summary_every", "num_eval_samples",
                    "feature_network", "description")


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """One BigGAN-deep training run: model, data, optimization, EMA, evaluation.

    ``description``'s first line is what ``evonorm-gan --list_configs`` prints; the rest gives the exact
    command and the expected time. ``truncation`` ``None`` samples z ~ N(0, I) at evaluation; a float ``t``
    resamples |z| > t (the BigGAN paper's definition). ``feature_network`` is a name or path for
    ``evonorm.gan.features.get_feature_network``.
    """

    model: BigGANConfig
    dataset: str = "fashion_mnist"
    global_batch_size: int = 32
    g_lr: float = 1e-4
    d_lr: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.999
    adam_eps: float = 1e-6
    d_steps_per_g_step: int = 1
    g_ortho_reg: float = 0.0
    ema_decay: float = 0.99
    ema_start_step: int = 100
    standing_stat_batches: int = 16
    train_steps: int = 600
    eval_every: int = 200
    checkpoint_every: int = 250
    summary_every: int = 20
    num_eval_samples: int = 10000
    num_real_samples: int = 10000
    feature_network: str = "fashion_mnist_classifier"
    truncation: float | None = None
    seed: int = 0
    data_dir: str | None = None
    paper: dict | None = None
    description: str = ""

    def __post_init__(self):
        if self.dataset not in ("fashion_mnist", "imagenet2012"):
            raise ValueError(f"dataset must be 'fashion_mnist' or 'imagenet2012', got {self.dataset!r}.")
        for name in ("global_batch_size", "d_steps_per_g_step", "train_steps", "eval_every",
                     "checkpoint_every", "summary_every", "num_eval_samples", "num_real_samples",
                     "standing_stat_batches"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}.")
        if self.truncation is not None and not self.truncation > 0:
            raise ValueError(f"truncation must be positive or None, got {self.truncation!r}.")

    def to_dict(self) -> dict:
        """A JSON-ready dict (the model as ``BigGANConfig.to_dict()``)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["model"] = self.model.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> GANConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown GANConfig field(s): {', '.join(unknown)}.")
        data = dict(data)
        data["model"] = BigGANConfig.from_dict(data["model"])
        return cls(**data)


def _command(name: str) -> str:
    return f"evonorm-gan --config={name} --workdir=/tmp/{name}"


def _imagenet(layer: str, resolution: int = 128) -> GANConfig:
    name = f"imagenet{resolution}_{layer}"
    kwargs = {"gn_relu": {"groups": 16}, "evonorm_s0": {"groups": 32}}.get(layer, {})
    lr = (5e-5, 2e-4) if resolution == 128 else (2.5e-5, 2.5e-5)
    model = BigGANConfig(resolution=resolution, num_classes=1000, image_channels=3, ch=128, z_dim=128,
                         embed_dim=128, norm=layer, norm_kwargs=kwargs)
    paper = dict(TABLE6[layer]) if resolution == 128 else None
    description = (
        f"BigGAN-deep {resolution}px ImageNet, {layer} in G (paper scale"
        f"{', Table 6' if paper else ''})\n"
        f"Command: {_command(name)} --strategy=tpu --tpu=NAME --feature_network=/path/to/inception "
        f"(TFDS imagenet2012 prepared; data_dir via --config_override=data_dir=...).\n"
        f"Expected: days on a TPU v3-128 class machine; Table 6 (median/best of 3 seeds): {paper}.")
    return GANConfig(model=model, dataset="imagenet2012", global_batch_size=2048, g_lr=lr[0], d_lr=lr[1],
                     adam_eps=1e-8, d_steps_per_g_step=2, ema_decay=0.9999, ema_start_step=20000,
                     train_steps=250_000, eval_every=5000, checkpoint_every=1000, summary_every=100,
                     num_eval_samples=50000, num_real_samples=50000, feature_network="inception_v3",
                     paper=paper, description=description)


def _fmnist(layer: str, tiny: bool = False) -> GANConfig:
    name = f"fmnist32_{layer}" + ("_tiny" if tiny else "")
    groups = 2 if tiny else 8  # the smallest (bottleneck) width is ch (tiny: 2 -> pairs; else 16 -> 8)
    kwargs = {"groups": groups} if layer in ("gn_relu", "evonorm_s0") else {}
    ch = 2 if tiny else 16
    model = BigGANConfig(resolution=32, num_classes=10, image_channels=1, ch=ch, z_dim=64 if not tiny else 16,
                         embed_dim=64 if not tiny else 16, norm=layer, norm_kwargs=kwargs)
    if tiny:
        description = (f"Fashion-MNIST 32px smoke run, {layer} in G (tests; ~20 steps)\n"
                       f"Command: {_command(name)}\nExpected: under a minute on 2 CPU cores; metrics "
                       f"are meaningless at this size.")
        return GANConfig(model=model, global_batch_size=16, train_steps=20, eval_every=20,
                         checkpoint_every=10,
                         summary_every=5, ema_start_step=5, standing_stat_batches=2, num_eval_samples=256,
                         num_real_samples=512, feature_network=TINY_FEATURE_NETWORK, description=description)
    description = (f"Fashion-MNIST 32px CPU twin of Table 6, {layer} in G (600 steps, batch 32)\n"
                   f"Command: {_command(name)} (add --config_override=seed=1 etc. for 3 seeds)\n"
                   f"Expected: ~3 min on 2 CPU cores (measured in gan/results/fmnist32: ~5 steps/s after ~25 s "
                   f"of tracing, ~20 s per 10k-sample evaluation).")
    return GANConfig(model=model, description=description)


def _build_registry() -> dict:
    configs = {}
    for layer in LAYERS:
        configs[f"imagenet128_{layer}"] = _imagenet(layer)
    configs["imagenet256_bn_relu"] = _imagenet("bn_relu", 256)
    for layer in LAYERS:
        configs[f"fmnist32_{layer}"] = _fmnist(layer)
        configs[f"fmnist32_{layer}_tiny"] = _fmnist(layer, tiny=True)
    return configs


CONFIGS: dict[str, GANConfig] = _build_registry()


def config_names() -> list[str]:
    """The registered config names, sorted."""
    return sorted(CONFIGS)


def one_line(config: GANConfig) -> str:
    """The first line of the config's description (what ``--list_configs`` prints)."""
    return config.description.splitlines()[0] if config.description else ""


def get_config(name: str, overrides: str | dict | None = None) -> GANConfig:
    """The config registered as ``name``, with ``overrides`` applied (see :func:`apply_overrides`).

    Raises:
      KeyError: unknown name; the message lists the known ones.
      ValueError: a bad override, naming it.
    """
    if name not in CONFIGS:
        raise KeyError(f"unknown GAN config {name!r}; known configs: {', '.join(config_names())}.")
    return apply_overrides(CONFIGS[name], overrides)


def parse_overrides(text: str) -> dict:
    """``'model.ch=8,train_steps=50'`` -> ``{'model.ch': 8, 'train_steps': 50}`` (values as Python literals).

    Commas split pairs only before ``key=``, so a value may hold commas (``model.norm_kwargs={'groups': 4}``).
    Unquoted words stay strings; ``none``/``null``, ``true``/``false`` are read case-insensitively.
    """
    out = {}
    for part in re.split(r",(?=\s*[A-Za-z_][\w.]*\s*=)", text.strip()) if text and text.strip() else []:
        if "=" not in part:
            raise ValueError(f"bad override {part!r}: expected key=value (e.g. model.ch=8,train_steps=50).")
        key, raw = (s.strip() for s in part.split("=", 1))
        out[key] = _literal(raw)
    return out


def _literal(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def _coerce(key: str, current: Any, value: Any) -> Any:
    """``value`` checked against the type of the field's current value."""
    if current is None or value is None:
        return value
    if isinstance(current, bool) or isinstance(value, bool):
        if not isinstance(value, bool) or not isinstance(current, bool):
            raise ValueError(f"override {key}={value!r}: expected {type(current).__name__}.")
        return value
    if isinstance(current, float) and isinstance(value, int):
        return float(value)
    if not isinstance(value, type(current)):
        raise ValueError(f"override {key}={value!r}: expected {type(current).__name__}, got "
                         f"{type(value).__name__}.")
    return value


def apply_overrides(config: GANConfig, overrides: str | dict | None) -> GANConfig:
    """``config`` with ``key=value`` overrides: a string as for :func:`parse_overrides`, or a dict.

    Keys are field names; ``model.<field>`` reaches into the :class:`BigGANConfig` and
    ``model.norm_kwargs.<key>`` into its norm kwargs. Unknown keys are an error listing the valid ones.
    """
    items = parse_overrides(overrides) if isinstance(overrides, str) else dict(overrides or {})
    top, model = {}, {}
    for key, value in items.items():
        head, _, rest = key.partition(".")
        if head == "model" and rest:
            model[rest] = value
        else:
            top[key] = value
    fields = {f.name for f in dataclasses.fields(GANConfig)} - {"model"}
    for key, value in top.items():
        if key not in fields:
            raise ValueError(f"unknown config field {key!r} in overrides; fields: {', '.join(sorted(fields))}"
                             f", and model.<field> for the model.")
        top[key] = _coerce(key, getattr(config, key), value)
    model_cfg = config.model
    if model:
        updates, norm_kwargs = {}, dict(model_cfg.norm_kwargs)
        model_fields = {f.name for f in dataclasses.fields(model_cfg)}
        for key, value in model.items():
            name, _, sub = key.partition(".")
            if name == "norm_kwargs" and sub:
                norm_kwargs[sub] = value
                updates["norm_kwargs"] = norm_kwargs
            elif name in model_fields and not sub:
                updates[name] = _coerce(f"model.{name}", getattr(model_cfg, name), value)
            else:
                raise ValueError(f"unknown model field {'model.' + key!r} in overrides; model fields: "
                                 f"{', '.join(sorted(model_fields))} (and norm_kwargs.<key>).")
        model_cfg = dataclasses.replace(model_cfg, **updates)
    return dataclasses.replace(config, model=model_cfg, **top)


def config_differences(saved: dict, requested: dict, ignore=RESUMABLE_FIELDS) -> list[str]:
    """``'field: saved -> requested'`` for every difference between two ``to_dict()`` configs."""
    diffs = []
    for key in sorted(set(saved) | set(requested)):
        if key in ignore:
            continue
        a, b = saved.get(key), requested.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key == "model":
            diffs += [f"model.{d}" for d in config_differences(a, b, ignore=())]
        elif a != b:
            diffs.append(f"{key}: {a!r} -> {b!r}")
    return diffs
