"""IS / FID / KID of ``evonorm.gan.metrics`` against independent formulas written out here."""

import warnings

import numpy as np
import pytest
from scipy import linalg

from evonorm.gan import metrics


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _reference_is(probs, splits):
    scores = []
    for part in np.array_split(probs, splits):  # equal-size splits here, so the same slices
        py = part.mean(axis=0)
        kl = np.sum(part * (np.log(part) - np.log(py)), axis=1)
        scores.append(np.exp(kl.mean()))
    return np.mean(scores), np.std(scores)


def _reference_fid(a, b):
    # The pytorch-fid formula, with scipy's general (Schur) matrix square root.
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def _reference_mmd2(x, y):
    # Brute force: every (i, j) pair with i != j, kernel evaluated one pair at a time.
    d = x.shape[1]
    k = lambda u, v: (u @ v / d + 1.0) ** 3  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


# ----- Inception Score -----

def test_is_of_uniform_confident_predictions_is_num_classes():
    probs = np.tile(np.eye(10), (100, 1))  # every split holds each class equally often
    mean, std = metrics.inception_score(probs, splits=10)
    assert mean == pytest.approx(10.0, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-9)


def test_is_of_identical_predictions_is_one(rng):
    probs = np.tile(_softmax(rng.normal(size=(1, 7))), (200, 1))
    mean, std = metrics.inception_score(probs, splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_is_matches_direct_formula_and_logits_path(rng):
    logits = 3.0 * rng.normal(size=(1000, 10))
    probs = _softmax(logits)
    want = _reference_is(probs, 10)
    assert metrics.inception_score(probs, splits=10) == pytest.approx(want, rel=1e-10)
    assert metrics.inception_score(logits, splits=10, from_logits=True) == pytest.approx(want, rel=1e-10)
    assert metrics.inception_score(probs.astype(np.float32), splits=5)[0] == pytest.approx(
        _reference_is(probs, 5)[0], rel=1e-5)


@pytest.mark.parametrize("bad, match", [
    (np.full((20,), 0.1), "rank-2"),
    (np.full((20, 10), 0.5), "sum to 1"),
    (np.full((5, 10), 0.1), "at least splits"),
    (np.full((20, 2), [2.0, -1.0]), ">= 0"),
])
def test_is_rejects_bad_inputs(bad, match):
    with pytest.raises(ValueError, match=match):
        metrics.inception_score(bad, splits=10)


# ----- Fréchet distance -----

@pytest.mark.parametrize("d", [16, 64])
def test_fid_matches_sqrtm_reference(rng, d):
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    a = rng.normal(size=(500, d)) @ mix
    b = rng.normal(size=(500, d)) @ (mix + 0.3 * np.eye(d)) + 0.5
    got = metrics.frechet_distance(a, b)
    assert got == pytest.approx(_reference_fid(a, b), rel=1e-6)
    assert got > 0


def test_fid_from_stats_equals_fid_of_features(rng):
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(400, 8)) * 2
    got = metrics.frechet_distance_from_stats(*metrics.feature_stats(a), *metrics.feature_stats(b))
    assert got == metrics.frechet_distance(a, b)


def test_fid_of_identical_features_is_zero(rng):
    a = rng.normal(size=(500, 32)) @ rng.normal(size=(32, 32))
    assert abs(metrics.frechet_distance(a, a)) < 1e-6


def test_fid_grows_with_noise(rng):
    a = rng.normal(size=(500, 32)) @ rng.normal(size=(32, 32))
    noise = rng.normal(size=a.shape)
    fids = [metrics.frechet_distance(a, a + scale * noise) for scale in (0.0, 0.1, 0.3, 1.0, 3.0)]
    assert np.all(np.diff(fids) > 0), fids


def test_fid_warns_when_covariance_is_rank_deficient(rng):
    a, b = rng.normal(size=(20, 32)), rng.normal(size=(20, 32))
    with pytest.warns(metrics.RankDeficientCovarianceWarning, match="N <= d"):
        fid = metrics.frechet_distance(a, b)
    assert np.isfinite(fid)


def test_fid_rejects_bad_inputs(rng):
    with pytest.raises(ValueError, match="rank-2"):
        metrics.frechet_distance(rng.normal(size=(10, 4, 2)), rng.normal(size=(10, 8)))
    with pytest.raises(ValueError, match="feature dimension"):
        metrics.frechet_distance(rng.normal(size=(50, 4)), rng.normal(size=(50, 5)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.frechet_distance(np.full((50, 4), np.nan), rng.normal(size=(50, 4)))
    with pytest.raises(ValueError, match=r"sigma2 must be \[3, 3\]"):
        metrics.frechet_distance_from_stats(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))


# ----- Kernel Inception Distance -----

def test_kid_single_subset_matches_brute_force(rng):
    a, b = rng.normal(size=(40, 6)), rng.normal(size=(40, 6)) + 0.3
    mean, stderr = metrics.kernel_inception_distance(a, b, num_subsets=1, subset_size=40)
    # A subset of all rows is a permutation of them; the estimate does not depend on the order.
    assert mean == pytest.approx(_reference_mmd2(a, b), rel=1e-10)
    assert np.isnan(stderr)


def test_kid_same_distribution_is_near_zero(rng):
    a, b = rng.normal(size=(5000, 8)), rng.normal(size=(5000, 8))
    mean, stderr = metrics.kernel_inception_distance(a, b, num_subsets=100, subset_size=100)
    assert stderr > 0
    assert abs(mean) < 3 * stderr, (mean, stderr)


def test_kid_of_shifted_distributions_is_positive(rng):
    a, b = rng.normal(size=(1000, 8)), rng.normal(size=(1000, 8)) + 0.5
    mean, stderr = metrics.kernel_inception_distance(a, b, num_subsets=20, subset_size=200)
    assert mean > 10 * stderr > 0


def test_kid_is_seeded_and_caps_subset_size(rng):
    a, b = rng.normal(size=(60, 4)), rng.normal(size=(80, 4))
    first = metrics.kernel_inception_distance(a, b, num_subsets=5, subset_size=1000, seed=3)
    assert first == metrics.kernel_inception_distance(a, b, num_subsets=5, subset_size=1000, seed=3)
    assert first != metrics.kernel_inception_distance(a, b, num_subsets=5, subset_size=1000, seed=4)


def test_kid_rejects_bad_inputs(rng):
    with pytest.raises(ValueError, match="feature dimension"):
        metrics.kernel_inception_distance(rng.normal(size=(50, 4)), rng.normal(size=(50, 3)))
    with pytest.raises(ValueError, match="rank-2"):
        metrics.kernel_inception_distance(rng.normal(size=50), rng.normal(size=(50, 1)))
    with pytest.raises(ValueError, match="num_subsets"):
        metrics.kernel_inception_distance(rng.normal(size=(50, 4)), rng.normal(size=(50, 4)), num_subsets=0)


# ----- Report -----

def test_score_features_report_names_the_network(rng):
    real, fake = rng.normal(size=(300, 8)), rng.normal(size=(200, 8)) + 0.2
    logits = rng.normal(size=(200, 10))
    report = metrics.score_features(real, fake, logits, feature_network="toy_net", kid_subsets=10)
    assert report["feature_network"] == "toy_net"
    assert (report["num_real"], report["num_fake"], report["feature_dim"]) == (300, 200, 8)
    assert report["fid"] == pytest.approx(metrics.frechet_distance(real, fake))
    assert report["is"] == pytest.approx(metrics.inception_score(logits, from_logits=True)[0])
    assert report["kid"] > 0 and report["kid_stderr"] > 0
    line = metrics.format_scores(report)
    for name in ("IS (toy_net)", "FID (toy_net)", "KID (toy_net)"):
        assert name in line
    assert "Inception" not in line

    from_stats = metrics.score_features(None, fake, None, feature_network="toy_net",
                                        real_stats=metrics.feature_stats(real))
    assert from_stats["fid"] == pytest.approx(report["fid"], rel=1e-12)
    assert from_stats["is"] is None and from_stats["kid"] is None
    assert "KID" not in metrics.format_scores(from_stats)


def test_score_features_requires_network_name_and_matching_dims(rng):
    real, fake = rng.normal(size=(30, 8)), rng.normal(size=(30, 8))
    with pytest.raises(ValueError, match="feature_network"):
        metrics.score_features(real, fake, feature_network="")
    with pytest.raises(ValueError, match="feature dimension"):
        metrics.score_features(real, fake[:, :4], feature_network="toy")
    with pytest.raises(ValueError, match="rows"):
        metrics.score_features(real, fake, rng.normal(size=(29, 10)), feature_network="toy")
