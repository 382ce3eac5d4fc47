"""Inception Score, Fréchet distance and Kernel Inception Distance from features, in float64 NumPy.

The formulas are independent of the network that produced the features (see ``features.py``): with
Inception-v3 ``pool_3`` features and logits they are the paper's IS / FID / KID; with any other network
they are a *classifier* score and distance, and every report here names the network (e.g.
``"FID (fashion_mnist_classifier)"``) so one is never mistaken for the other.

- IS = exp(E_x KL(p(y|x) || p(y))) per split, mean and std over splits (Salimans et al. 2016; 10 splits
  by convention).
- FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}) (Heusel et al. 2017). Tr((S1 S2)^{1/2}) is taken
  as Tr((A S2 A)^{1/2}) with A = S1^{1/2}: A S2 A is symmetric PSD and similar to S1 S2, so two
  symmetric eigendecompositions replace ``scipy.linalg.sqrtm`` of a non-symmetric product (slow at
  d = 2048, prone to complex round-off, and its ``disp`` argument is going away in SciPy 1.18).
  FID is biased upwards for finite N: compare models only at equal sample sizes.
- KID = unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 (Bińkowski et al. 2018), averaged over random
  subsets as clean-fid does (100 subsets of at most 1000 samples).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import special

__all__ = ["RankDeficientCovarianceWarning", "inception_score", "feature_stats", "trace_sqrt_product",
           "frechet_distance", "frechet_distance_from_stats", "kernel_inception_distance", "metric_label",
           "score_features", "format_scores"]

# Rows of a float32 softmax sum to 1 only to ~1e-6 per class; 1e-3 still catches logits passed as probs.
_PROB_SUM_ATOL = 1e-3


class RankDeficientCovarianceWarning(UserWarning):
    """A covariance estimated from N <= d samples is singular: FID is then dominated by sampling noise."""


def _as_matrix(name: str, x) -> np.ndarray:
    """``x`` as a finite float64 ``[N, d]`` array, or a ValueError naming the argument."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a rank-2 array [N, d], got shape {arr.shape}.")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}).")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr


def _same_dim(a: np.ndarray, b: np.ndarray, names=("features_a", "features_b")) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names[0]} and {names[1]} differ in feature dimension: "
                         f"{a.shape[1]} vs {b.shape[1]}.")


def inception_score(probs_or_logits, splits: int = 10, from_logits: bool = False):
    """Inception Score of class predictions: ``(mean, std)`` of exp(E_x KL(p(y|x) || p(y))) over splits.

    Split ``i`` holds rows ``[i * N // splits, (i + 1) * N // splits)`` (the OpenAI code's slicing),
    each with its own marginal p(y). The std is the population std of the split scores (``np.std``).

    Args:
      probs_or_logits: ``[N, K]`` softmax probabilities (rows summing to 1), or logits with
        ``from_logits=True``.
      splits: number of disjoint splits; needs N >= splits.
      from_logits: apply a (numerically stable) softmax first.

    Returns:
      ``(mean, std)`` as Python floats; 1 <= IS <= K.
    """
    x = _as_matrix("probs_or_logits", probs_or_logits)
    if not isinstance(splits, (int, np.integer)) or isinstance(splits, bool) or splits < 1:
        raise ValueError(f"splits must be a positive integer, got {splits!r}.")
    n = x.shape[0]
    if n < splits:
        raise ValueError(f"inception_score needs at least splits={splits} predictions, got N={n}.")
    if from_logits:
        probs = np.exp(special.log_softmax(x, axis=1))
    else:
        if x.min() < 0:
            raise ValueError(f"probabilities must be >= 0 (min {x.min():.3g}); pass from_logits=True for "
                             f"logits.")
        worst = float(np.abs(x.sum(axis=1) - 1.0).max())
        if worst > _PROB_SUM_ATOL:
            raise ValueError(f"rows of probs_or_logits must sum to 1 (worst deviation {worst:.3g}); pass "
                             f"from_logits=True for logits.")
        probs = x / x.sum(axis=1, keepdims=True)  # exact normalization so p(y) is a distribution too
    scores = []
    for i in range(splits):
        part = probs[i * n // splits:(i + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        # rel_entr(p, q) = p log(p / q), with 0 log 0 = 0: one-hot rows stay finite.
        kl = special.rel_entr(part, marginal).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def feature_stats(features):
    """Mean ``[d]`` and unbiased covariance ``[d, d]`` (float64) of ``features [N, d]``.

    Warns with ``RankDeficientCovarianceWarning`` when N <= d: the covariance is then singular and the
    FID mostly measures the sample size (Inception's 2048-d features need N > 2048; 10k is customary).
    """
    x = _as_matrix("features", features)
    n, d = x.shape
    if n < 2:
        raise ValueError(f"feature_stats needs at least 2 samples, got {n}.")
    if n <= d:
        warnings.warn(f"{n} samples of {d}-d features: the covariance is rank-deficient (N <= d), so the "
                      f"Fréchet distance is dominated by sampling noise; use N > d samples.",
                      RankDeficientCovarianceWarning, stacklevel=2)
    return x.mean(axis=0), np.cov(x, rowvar=False, ddof=1).reshape(d, d)


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix; round-off eigenvalues below 0 count as 0."""
    eigvals, eigvecs = np.linalg.eigh((sigma + sigma.T) / 2.0)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def trace_sqrt_product(sigma1, sigma2) -> float:
    """Tr((S1 S2)^{1/2}) for PSD S1, S2, as sum(sqrt(eig(A S2 A))) with A = S1^{1/2}."""
    a = _sqrt_psd(np.asarray(sigma1, dtype=np.float64))
    m = a @ np.asarray(sigma2, dtype=np.float64) @ a
    eigvals = np.linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sqrt(np.clip(eigvals, 0.0, None)).sum())


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (see the module docstring)."""
    mu1, mu2 = (np.asarray(m, dtype=np.float64) for m in (mu1, mu2))
    sigma1, sigma2 = (np.asarray(s, dtype=np.float64) for s in (sigma1, sigma2))
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 must be vectors of one length, got shapes {mu1.shape}, {mu2.shape}.")
    d = mu1.shape[0]
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        if s.shape != (d, d):
            raise ValueError(f"{name} must be [{d}, {d}] to match the means, got shape {s.shape}.")
    for name, v in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{name} contains NaN or infinite values.")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2))


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``[N_a, d]`` and ``[N_b, d]``."""
    a, b = _as_matrix("features_a", features_a), _as_matrix("features_b", features_b)
    _same_dim(a, b)
    return frechet_distance_from_stats(*feature_stats(a), *feature_stats(b))


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kernel_inception_distance(features_a, features_b, num_subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0):
    """KID: mean and standard error of unbiased MMD^2 estimates over random subsets.

    Each subset draws ``m = min(subset_size, N_a, N_b)`` rows of each set without replacement (seeded);
    its estimate excludes the kernel's diagonal terms, so it is unbiased and may be negative.

    The standard error is ``std(estimates, ddof=1) / sqrt(num_subsets)``: the spread due to the subset
    draws. When ``m`` is close to N the subsets overlap and that understates the sampling uncertainty of
    the full sets (at ``m = N`` every subset is the same and it is 0).

    Returns:
      ``(mean, standard_error)`` as Python floats (standard_error is nan for a single subset).
    """
    a, b = _as_matrix("features_a", features_a), _as_matrix("features_b", features_b)
    _same_dim(a, b)
    for name, v in (("num_subsets", num_subsets), ("subset_size", subset_size)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}.")
    m = min(int(subset_size), a.shape[0], b.shape[0])
    if m < 2:
        raise ValueError(f"kernel_inception_distance needs at least 2 samples per set, got "
                         f"{a.shape[0]} and {b.shape[0]}.")
    rng = np.random.default_rng(seed)
    estimates = np.empty(num_subsets)
    for i in range(num_subsets):
        x = a[rng.choice(a.shape[0], m, replace=False)]
        y = b[rng.choice(b.shape[0], m, replace=False)]
        k_xx, k_yy = _polynomial_kernel(x, x), _polynomial_kernel(y, y)
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        estimates[i] = within - 2.0 * _polynomial_kernel(x, y).mean()
    stderr = float(estimates.std(ddof=1) / np.sqrt(num_subsets)) if num_subsets > 1 else float("nan")
    return float(estimates.mean()), stderr


def metric_label(metric: str, feature_network: str) -> str:
    """Display name of a metric that names its feature network, e.g. ``'FID (inception_v3)'``."""
    return f"{metric} ({feature_network})"


def score_features(real_features, fake_features, fake_logits=None, *, feature_network: str,
                   is_splits: int = 10, kid_subsets: int = 100, kid_subset_size: int = 1000,
                   seed: int = 0, real_stats=None) -> dict:
    """IS, FID and KID of generated samples against real ones, in one report.

    Args:
      real_features: ``[N_r, d]`` real features; may be None when ``real_stats`` is given (KID is then
        None: it needs the features themselves).
      fake_features: ``[N_f, d]`` features of the generated samples.
      fake_logits: ``[N_f, K]`` logits of the generated samples, for IS (None: IS is None).
      feature_network: name of the network that made the features; required, it goes into the report.
      is_splits, kid_subsets, kid_subset_size, seed: see ``inception_score`` and
        ``kernel_inception_distance``.
      real_stats: optional precomputed ``(mu, sigma)`` of the real features (skips recomputing them).

    Returns:
      A dict with 'is', 'is_std', 'fid', 'kid', 'kid_stderr', 'feature_network', 'num_real', 'num_fake',
      'feature_dim', and the settings 'is_splits', 'kid_subsets', 'kid_subset_size', 'seed'.
    """
    if not isinstance(feature_network, str) or not feature_network:
        raise ValueError(f"feature_network must be a non-empty name, got {feature_network!r}.")
    fake = _as_matrix("fake_features", fake_features)
    if real_features is None and real_stats is None:
        raise ValueError("pass real_features or real_stats.")
    real = None if real_features is None else _as_matrix("real_features", real_features)
    if real is not None:
        _same_dim(real, fake, ("real_features", "fake_features"))
    mu_r, sigma_r = real_stats if real_stats is not None else feature_stats(real)
    if np.shape(mu_r) != (fake.shape[1],):
        raise ValueError(f"real statistics are {np.shape(mu_r)[0]}-d, fake_features {fake.shape[1]}-d.")
    num_real = real.shape[0] if real is not None else None
    report = {"is": None, "is_std": None, "kid": None, "kid_stderr": None}
    if fake_logits is not None:
        logits = _as_matrix("fake_logits", fake_logits)
        if logits.shape[0] != fake.shape[0]:
            raise ValueError(f"fake_logits has {logits.shape[0]} rows, fake_features {fake.shape[0]}.")
        report["is"], report["is_std"] = inception_score(logits, splits=is_splits, from_logits=True)
    report["fid"] = frechet_distance_from_stats(mu_r, sigma_r, *feature_stats(fake))
    if real is not None:
        report["kid"], report["kid_stderr"] = kernel_inception_distance(
            real, fake, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    report.update(feature_network=feature_network, num_real=num_real, num_fake=fake.shape[0],
                  feature_dim=fake.shape[1], is_splits=is_splits, kid_subsets=kid_subsets,
                  kid_subset_size=kid_subset_size, seed=seed)
    return report


def format_scores(report: dict) -> str:
    """One line such as ``'IS (net) 8.91 ± 0.07 | FID (net) 3.21 | KID (net) 0.0012 ± 0.0003 | 128-d,
    10000 real vs 10000 fake'``; metrics that were not computed are left out."""
    net = report["feature_network"]
    parts = []
    if report.get("is") is not None:
        parts.append(f"{metric_label('IS', net)} {report['is']:.3f} ± {report['is_std']:.3f}")
    parts.append(f"{metric_label('FID', net)} {report['fid']:.4f}")
    if report.get("kid") is not None:
        parts.append(f"{metric_label('KID', net)} {report['kid']:.5f} ± {report['kid_stderr']:.5f}")
    real = report.get("num_real")
    parts.append(f"{report['feature_dim']}-d, {real if real is not None else 'precomputed'} real vs "
                 f"{report['num_fake']} fake")
    return " | ".join(parts)
