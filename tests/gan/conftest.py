"""Fixtures shared by the GAN tests."""

import os

import pytest


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory):
    """A private EVONORM_CACHE_DIR holding the tiny configs' classifier (trained once per session)."""
    from evonorm.gan import configs, evaluation  # noqa: PLC0415

    path = str(tmp_path_factory.getbasetemp() / "evonorm_cache")
    old = os.environ.get("EVONORM_CACHE_DIR")
    os.environ["EVONORM_CACHE_DIR"] = path
    evaluation.load_feature_network(configs.TINY_FEATURE_NETWORK)
    yield path
    if old is None:
        os.environ.pop("EVONORM_CACHE_DIR", None)
    else:
        os.environ["EVONORM_CACHE_DIR"] = old
