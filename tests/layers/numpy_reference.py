"""Independent NumPy implementation of every norm-act layer, written from the paper and the test spec.

Nothing here imports or mirrors ``evonorm``: the formulas come from Liu et al. (NeurIPS 2020,
Tables 1, 3, 4, 6, 7) and the conventions stated for this test suite. Computation is in float64 so
the reference is exact to well below the float32 tolerances the tests use.

Conventions: channels-last ``x`` of shape [B, H, W, C] (any number of spatial axes works); eps inside
every square root; all variances biased; groups are contiguous blocks of C/G channels; every layer
ends with the per-channel ``* gamma + beta`` and the activation of a "normalize then activate"
baseline comes after that affine.
"""

from __future__ import annotations

import numpy as np

DEFAULT_EPS = 1e-5
FRN_EPS = 1e-6

# Which moving statistics each name keeps (when it normalizes at all).
MOVING_STATS = {
    "evonorm_b0": ("moving_variance",), "evonorm_b1": ("moving_variance",),
    "evonorm_b2": ("moving_variance",), "evonorm_b0_no_v1x": ("moving_variance",),
    "evonorm_b0_no_local": ("moving_variance",), "evonorm_b0_max_to_add": ("moving_variance",),
    "bn_relu": ("moving_mean", "moving_variance"), "bn_silu": ("moving_mean", "moving_variance"),
    "rs_rej": ("moving_mean_square",),
}
# Learnable per-channel parameters besides gamma/beta that exist when the activation is applied.
EXTRA_PARAMS = {
    "evonorm_b0": ("v1",), "evonorm_s0": ("v1",), "evonorm_b0_no_global": ("v1",),
    "evonorm_b0_max_to_add": ("v1",), "bn_silu": ("v1",), "gn_silu": ("v1",), "frn": ("tau",),
}
GROUPED = ("evonorm_s0", "evonorm_s1", "evonorm_s2", "gn_relu", "gn_silu")
BATCH_VARIANCE_NAMES = ("evonorm_b0", "evonorm_b1", "evonorm_b2", "evonorm_b0_no_v1x",
                        "evonorm_b0_no_local", "evonorm_b0_max_to_add")
ALL_NAMES = tuple(sorted(
    BATCH_VARIANCE_NAMES + ("evonorm_s0", "evonorm_s1", "evonorm_s2", "evonorm_b0_no_global", "bn_relu",
                            "bn_silu", "gn_relu", "gn_silu", "ln_relu", "pn_relu", "frn", "random",
                            "random_rej", "rs_rej")))


def default_eps(name: str) -> float:
    return FRN_EPS if name == "frn" else DEFAULT_EPS


def default_groups(channels: int) -> int:
    """32 when C divides by 32, else the largest divisor of C that is below 32."""
    if channels % 32 == 0:
        return 32
    return max(d for d in range(1, min(channels, 31) + 1) if channels % d == 0)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def relu(x):
    return np.maximum(x, 0.0)


# --- statistics (all keep dims so they broadcast against x) -----------------------------------------

def _bhw(x):
    return tuple(range(x.ndim - 1))


def _hw(x):
    return tuple(range(1, x.ndim - 1))


def batch_mean(x):
    return x.mean(axis=_bhw(x))


def batch_var(x):
    return ((x - x.mean(axis=_bhw(x), keepdims=True)) ** 2).mean(axis=_bhw(x))


def batch_mean_square(x):
    return (x ** 2).mean(axis=_bhw(x))


def instance_std(x, eps):
    mean = x.mean(axis=_hw(x), keepdims=True)
    return np.sqrt(((x - mean) ** 2).mean(axis=_hw(x), keepdims=True) + eps)


def instance_rms(x, eps):
    return np.sqrt((x ** 2).mean(axis=_hw(x), keepdims=True) + eps)


def _split_groups(x, groups):
    """[B, *S, C] -> [B, *S, G, C/G] and the axes (spatial + within-group) to reduce."""
    channels = x.shape[-1]
    assert channels % groups == 0, (channels, groups)
    xg = x.reshape(x.shape[:-1] + (groups, channels // groups))
    return xg, tuple(range(1, x.ndim - 1)) + (x.ndim,)


def group_mean_var(x, groups):
    xg, axes = _split_groups(x, groups)
    mean = xg.mean(axis=axes, keepdims=True)
    var = ((xg - mean) ** 2).mean(axis=axes, keepdims=True)
    full = xg.shape
    return (np.broadcast_to(mean, full).reshape(x.shape), np.broadcast_to(var, full).reshape(x.shape))


def group_std(x, groups, eps):
    return np.sqrt(group_mean_var(x, groups)[1] + eps)


def group_rms(x, groups, eps):
    xg, axes = _split_groups(x, groups)
    ms = (xg ** 2).mean(axis=axes, keepdims=True)
    return np.sqrt(np.broadcast_to(ms, xg.shape).reshape(x.shape) + eps)


def group_norm(x, groups, eps):
    mean, var = group_mean_var(x, groups)
    return (x - mean) / np.sqrt(var + eps)


# --- the layers ---------------------------------------------------------------------------------------

def forward(name, x, params, training, apply_act=True, no_act_mode="norm", groups=None, eps=None,
            momentum=0.9):
    """Output and updated moving statistics of layer ``name`` on channels-last ``x``.

    Args:
      name: registry name, e.g. 'evonorm_b0'.
      x: input array [B, *spatial, C].
      params: dict with 'gamma', 'beta' and, as the layer needs, 'v1', 'tau', 'moving_variance',
        'moving_mean', 'moving_mean_square' (per-channel arrays).
      training: use batch statistics (and update moving ones) if True, moving statistics otherwise.
      apply_act, no_act_mode: see the test spec ('norm' keeps the normalization, 'affine' keeps only
        ``x * gamma + beta``).
      groups: group count for grouped layers; None applies the default rule.
      eps: None gives the layer's default (1e-6 for FRN, 1e-5 otherwise).
      momentum: moving-average decay.

    Returns:
      (y, new_moving) where new_moving maps each moving statistic name to its value after the call.
    """
    x = np.asarray(x, np.float64)
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    eps = default_eps(name) if eps is None else eps
    gamma, beta = p["gamma"], p["beta"]
    moving = {k: p[k] for k in MOVING_STATS.get(name, ()) if k in p}
    if not apply_act and no_act_mode == "affine":
        return x * gamma + beta, {}
    if name in GROUPED:
        groups = default_groups(x.shape[-1]) if groups is None else groups

    def update(key, batch_value):
        """Training: moving <- m * moving + (1 - m) * batch value; returns the statistic to use."""
        if training:
            moving[key] = momentum * moving[key] + (1.0 - momentum) * batch_value
            return batch_value
        return p[key]

    if name in BATCH_VARIANCE_NAMES:
        a = np.sqrt(update("moving_variance", batch_var(x)) + eps)
        if not apply_act:
            n = x / a
        elif name == "evonorm_b0":
            n = x / np.maximum(a, p["v1"] * x + instance_std(x, eps))
        elif name == "evonorm_b1":
            n = x / np.maximum(a, (x + 1.0) * instance_rms(x, eps))
        elif name == "evonorm_b2":
            n = x / np.maximum(a, instance_rms(x, eps) - x)
        elif name == "evonorm_b0_no_v1x":
            n = x / np.maximum(a, instance_std(x, eps))
        elif name == "evonorm_b0_no_local":
            n = x / a
        else:  # evonorm_b0_max_to_add
            n = x / (a + p["v1"] * x + instance_std(x, eps))
        return n * gamma + beta, moving

    if name == "evonorm_b0_no_global":
        inst = instance_std(x, eps)
        n = x / (p["v1"] * x + inst) if apply_act else x / inst
        return n * gamma + beta, moving
    if name in ("evonorm_s0", "evonorm_s1"):
        gate = x * sigmoid((p["v1"] if name == "evonorm_s0" else 1.0) * x) if apply_act else x
        return gate / group_std(x, groups, eps) * gamma + beta, moving
    if name == "evonorm_s2":
        gate = x * sigmoid(x) if apply_act else x
        return gate / group_rms(x, groups, eps) * gamma + beta, moving

    if name in ("bn_relu", "bn_silu"):
        mean = update("moving_mean", batch_mean(x))
        var = update("moving_variance", batch_var(x))
        z = (x - mean) / np.sqrt(var + eps) * gamma + beta
    elif name in ("gn_relu", "gn_silu"):
        z = group_norm(x, groups, eps) * gamma + beta
    elif name == "ln_relu":
        z = group_norm(x, 1, eps) * gamma + beta
    elif name == "pn_relu":
        z = x / np.sqrt((x ** 2).mean(axis=-1, keepdims=True) + eps) * gamma + beta
    elif name == "frn":
        z = x / instance_rms(x, eps) * gamma + beta
    elif name == "random":
        if apply_act:
            z = np.sqrt(np.broadcast_to(instance_std(sigmoid(x), eps), x.shape)) * gamma + beta
        else:
            z = x * gamma + beta
    elif name == "random_rej":
        z = (np.tanh(np.maximum(x, np.tanh(x))) if apply_act else x) * gamma + beta
    elif name == "rs_rej":
        ms = update("moving_mean_square", batch_mean_square(x))
        z = (relu(x) if apply_act else x) / np.sqrt(ms + eps) * gamma + beta
    else:
        raise ValueError(f"no reference for {name!r}")

    if not apply_act or name in ("random", "random_rej", "rs_rej"):
        return z, moving
    if name in ("bn_relu", "gn_relu", "ln_relu", "pn_relu"):
        return relu(z), moving
    if name in ("bn_silu", "gn_silu"):
        return z * sigmoid(p["v1"] * z), moving
    return np.maximum(z, p["tau"]), moving  # frn
