"""The GAN config registry: names, Table 6 numbers, overrides and their errors, resume comparison."""

import dataclasses
import json

import pytest

from evonorm.gan import configs

LAYERS = ("bn_relu", "evonorm_b0", "evonorm_s0", "gn_relu", "ln_relu", "pn_relu")


def test_every_family_is_registered():
    names = set(configs.config_names())
    for layer in LAYERS:
        assert {f"imagenet128_{layer}", f"fmnist32_{layer}", f"fmnist32_{layer}_tiny"} <= names
    assert "imagenet256_bn_relu" in names


def test_paper_scale_settings_and_table6():
    cfg = configs.get_config("imagenet128_evonorm_b0")
    model = cfg.model
    assert (model.resolution, model.ch, model.z_dim, model.num_classes) == (128, 128, 128, 1000)
    assert (cfg.global_batch_size, cfg.g_lr, cfg.d_lr, cfg.d_steps_per_g_step) == (2048, 5e-5, 2e-4, 2)
    assert (cfg.beta1, cfg.beta2, cfg.ema_decay, cfg.dataset) == (0.0, 0.999, 0.9999, "imagenet2012")
    assert cfg.paper == dict(is_median=101.13, is_best=113.63, fid_median=6.91, fid_best=5.87)
    assert configs.get_config("imagenet128_gn_relu").model.norm_kwargs == {"groups": 16}
    assert configs.get_config("imagenet128_pn_relu").paper["fid_median"] == 10.41
    assert configs.get_config("imagenet256_bn_relu").model.resolution == 256


@pytest.mark.parametrize("layer", LAYERS)
def test_cpu_twins_groups_divide_every_norm(layer):
    for name in (f"fmnist32_{layer}", f"fmnist32_{layer}_tiny"):
        cfg = configs.get_config(name)
        assert (cfg.model.resolution, cfg.model.image_channels, cfg.model.num_classes) == (32, 1, 10)
        assert cfg.dataset == "fashion_mnist" and cfg.d_steps_per_g_step == 1
        groups = cfg.model.norm_kwargs.get("groups")
        if groups:
            assert all(c % groups == 0 for c, _ in cfg.model.norm_resolutions()), name
        assert f"--config={name}" in cfg.description
    assert configs.get_config(f"fmnist32_{layer}_tiny").train_steps <= 50


def test_unknown_name_lists_known_ones():
    with pytest.raises(KeyError, match="fmnist32_evonorm_s0_tiny"):
        configs.get_config("fmnist32_nope")


def test_overrides_reach_into_the_model():
    cfg = configs.get_config("fmnist32_gn_relu", "model.ch=8,train_steps=50,truncation=0.5,"
                                                 "model.norm_kwargs.groups=4,g_lr=1e-3")
    assert (cfg.model.ch, cfg.train_steps, cfg.truncation, cfg.g_lr) == (8, 50, 0.5, 1e-3)
    assert cfg.model.norm_kwargs == {"groups": 4}
    assert configs.get_config("fmnist32_gn_relu").model.norm_kwargs == {"groups": 8}  # registry untouched
    assert configs.get_config("fmnist32_bn_relu", {"truncation": None, "d_lr": 1}).d_lr == 1.0
    # A value may contain commas, and int fields take ints only.
    cfg = configs.get_config("fmnist32_bn_relu", "model.norm_kwargs={'epsilon': 1e-3, 'momentum': 0.5}")
    assert cfg.model.norm_kwargs == {"epsilon": 1e-3, "momentum": 0.5}


@pytest.mark.parametrize("override, message", [
    ("nope=1", "unknown config field 'nope'"),
    ("model.nope=1", "unknown model field 'model.nope'"),
    ("train_steps=1.5", "expected int"),
    ("train_steps", "expected key=value"),
    ("eval_every=0", "eval_every must be a positive integer"),
    ("model.resolution=48", "resolution must be one of"),
])
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(ValueError, match=message):
        configs.get_config("fmnist32_bn_relu", override)


def test_dict_round_trip_and_differences():
    cfg = configs.get_config("imagenet128_bn_relu")
    data = json.loads(json.dumps(cfg.to_dict()))
    assert configs.GANConfig.from_dict(data) == cfg
    other = dataclasses.replace(cfg, train_steps=10, d_lr=1e-3,
                                model=dataclasses.replace(cfg.model, ch=64))
    diffs = configs.config_differences(data, json.loads(json.dumps(other.to_dict())))
    assert diffs == ["d_lr: 0.0002 -> 0.001", "model.ch: 128 -> 64"]  # train_steps may change on resume
    with pytest.raises(ValueError, match="unknown GANConfig field"):
        configs.GANConfig.from_dict({**data, "bogus": 1})
