"""BigGAN-deep generator and projection discriminator, with the generator's norm-acts from the one seam.

One definition serves 32, 64, 128 and 256 px: the resolution picks the stage table (channel multipliers
of the references, ``../shared/research/biggan.md`` 1.2 and 1.4), ``ch`` scales every width. At 128 px,
``ch=128``, 1000 classes and ``norm='bn_relu'`` the generator has exactly compare_gan's 50,244,484
trainable parameters (its ``resnet_biggan_deep_test.py``) and the discriminator 34,590,210; with
``to_rgb='hub'`` (the TF Hub module's 3x3 ch -> ch output conv, first channels kept) the generator has
50,388,609, the paper's "50.4M". Both are pinned in ``tests/gan/test_biggan.py``.

What the generator does (the layout followed: compare_gan's, with the official ``1 +`` on the conditional
gain): ``c = concat(z, Embed(y))`` (the whole z, no hierarchical chunks: BigGAN-deep has none) feeds the
first spectrally normalized linear layer (to 4x4) and every class-conditional norm-act; two bottleneck
blocks per resolution, the second upsampling; self-attention once at ``attention_resolution``; a final
unconditional norm-act of the same kind, a 3x3 conv and tanh. The discriminator has no normalization:
bottleneck blocks that average-pool, self-attention at the same resolution, ReLU, global sum pooling and
the projection head ``Linear(h) + <Embed_D(y), h>``.

Example:
  >>> cfg = BigGANConfig(resolution=32, num_classes=10, image_channels=1, ch=16, norm="evonorm_s0",
  ...                    norm_kwargs={"groups": 4})
  >>> G, D = Generator(cfg), Discriminator(cfg)
  >>> images = G((tf.random.normal([8, cfg.z_dim]), tf.zeros([8], tf.int32)), training=True)
  >>> logits = D((images, tf.zeros([8], tf.int32)), training=True)
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tf_keras

from evonorm.gan.blocks import DiscriminatorBlock, GeneratorBlock, SelfAttention
from evonorm.layers import legacy, registry
from evonorm.layers.spectral import DEFAULT_SN_EPSILON, SNConv2D, SNDense, SNEmbedding

# (in, out) channel multipliers per resolution stage. G: each stage is a block in -> in and an upsampling
# block in -> out, from 4x4. D: a downsampling block in -> out and a block out -> out, down to 4x4.
G_STAGES = {
    32: ((4, 4), (4, 4), (4, 4)),
    64: ((16, 16), (16, 8), (8, 4), (4, 2)),
    128: ((16, 16), (16, 8), (8, 4), (4, 2), (2, 1)),
    256: ((16, 16), (16, 8), (8, 8), (8, 4), (4, 2), (2, 1)),
}
D_STAGES = {
    32: ((1, 4), (4, 4), (4, 4)),
    64: ((1, 2), (2, 4), (4, 8), (8, 16)),
    128: ((1, 2), (2, 4), (4, 8), (8, 16), (16, 16)),
    256: ((1, 2), (2, 4), (4, 8), (8, 8), (8, 16), (16, 16)),
}
TO_RGB = ("conv", "hub")


@dataclasses.dataclass(frozen=True)
class BigGANConfig:
    """Architecture of a BigGAN-deep pair.

    Attributes:
      resolution: output side, one of ``G_STAGES`` (32, 64, 128, 256).
      num_classes: classes of the conditioning label.
      image_channels: 3 for RGB, 1 for grayscale data such as Fashion-MNIST.
      ch: channel width multiplier of G (BigGAN-deep: 128).
      d_ch: the discriminator's multiplier (default: ``ch``).
      z_dim: latent size (128); embed_dim: shared class embedding size (128).
      norm: registry name of G's norm-acts (``evonorm.layers.list_norm_acts()``), class-conditional in
        the blocks, unconditional at the end.
      norm_kwargs: the shared constructor contract of that layer (``groups``, ``epsilon``...).
      attention_resolution: where the one self-attention block sits in G and D (64); 0 disables it.
      to_rgb: ``'conv'`` (3x3 ch -> image_channels, compare_gan) or ``'hub'`` (3x3 ch -> ch, first
        channels kept: the TF Hub module, 144,125 more parameters at 128 px).
      spectral_norm / sn_epsilon: spectral normalization of every conv and linear layer (G and D) and of
        the conditional norms' projections (not of G's shared embedding, as in the references).
    """

    resolution: int = 128
    num_classes: int = 1000
    image_channels: int = 3
    ch: int = 128
    d_ch: int | None = None
    z_dim: int = 128
    embed_dim: int = 128
    norm: str = "bn_relu"
    norm_kwargs: dict = dataclasses.field(default_factory=dict)
    attention_resolution: int = 64
    to_rgb: str = "conv"
    spectral_norm: bool = True
    sn_epsilon: float = DEFAULT_SN_EPSILON

    def __post_init__(self):
        if self.resolution not in G_STAGES:
            raise ValueError(f"BigGANConfig: resolution must be one of {sorted(G_STAGES)}, got "
                             f"{self.resolution!r}.")
        if self.to_rgb not in TO_RGB:
            raise ValueError(f"BigGANConfig: to_rgb must be one of {TO_RGB}, got {self.to_rgb!r}.")
        for name in ("num_classes", "image_channels", "ch", "z_dim", "embed_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"BigGANConfig: {name} must be a positive integer, got {value!r}.")
        object.__setattr__(self, "norm", registry.canonical_name(self.norm))
        if self.ch * min(min(s) for s in G_STAGES[self.resolution]) < 4:
            raise ValueError(f"BigGANConfig: ch={self.ch} leaves a bottleneck with no channels at "
                             f"{self.resolution} px.")

    @property
    def discriminator_ch(self) -> int:
        return self.d_ch or self.ch

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "BigGANConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"BigGANConfig: unknown fields {unknown}; known: {sorted(known)}.")
        return cls(**values)

    def norm_resolutions(self):
        """(channels, resolution) of every conditional norm-act of G, for checking group counts."""
        out, res = [], 4
        for cin, cout in G_STAGES[self.resolution]:
            for up, (i, o) in ((False, (cin, cin)), (True, (cin, cout))):
                b = i * self.ch // 4
                out += [(i * self.ch, res), (b, res), (b, res * 2 if up else res), (b, res * 2 if up else res)]
                res = res * 2 if up else res
        return out


def _sn(cfg: BigGANConfig) -> dict:
    return dict(spectral_norm=cfg.spectral_norm, sn_epsilon=cfg.sn_epsilon)


def _conv_sn(cfg: BigGANConfig) -> dict:
    return dict(spectral=cfg.spectral_norm, sn_epsilon=cfg.sn_epsilon)


class Generator(tf_keras.Model):
    """BigGAN-deep generator: ``G((z, y), training) -> images [B, R, R, image_channels]`` in [-1, 1]."""

    def __init__(self, config: BigGANConfig, **kwargs):
        kwargs.setdefault("name", "generator")
        super().__init__(**kwargs)
        self.config = cfg = config
        stages = G_STAGES[cfg.resolution]
        self.embed = SNEmbedding(cfg.num_classes, cfg.embed_dim, spectral=False, name="shared_embedding")
        self.linear = SNDense(4 * 4 * stages[0][0] * cfg.ch, name="linear", **_conv_sn(cfg))
        self.blocks, self.attention_after = [], None
        res = 4
        for cin, cout in stages:
            for up, out in ((False, cin), (True, cout)):
                self.blocks.append(GeneratorBlock(cin * cfg.ch, out * cfg.ch, up, cfg.norm, cfg.norm_kwargs,
                                                  name=f"block{len(self.blocks)}", **_sn(cfg)))
            res *= 2
            if res == cfg.attention_resolution:
                self.attention_after = len(self.blocks) - 1
                self.attention = SelfAttention(cout * cfg.ch, name="attention", **_sn(cfg))
        self.final_norm = legacy.create_norm_act(cfg.norm, name="final_norm", **cfg.norm_kwargs)
        rgb = cfg.ch if cfg.to_rgb == "hub" else cfg.image_channels
        self.to_rgb = SNConv2D(rgb, 3, name="to_rgb", **_conv_sn(cfg))

    def call(self, inputs, training=None):
        z, y = inputs
        cfg = self.config
        c = tf.concat([tf.cast(z, tf.float32), self.embed(y, training=training)], axis=-1)
        h = tf.reshape(self.linear(c, training=training), [-1, 4, 4, G_STAGES[cfg.resolution][0][0] * cfg.ch])
        for i, block in enumerate(self.blocks):
            h = block((h, c), training=training)
            if i == self.attention_after:
                h = self.attention(h, training=training)
        h = self.final_norm(h, training=training)
        h = self.to_rgb(h, training=training)[..., :cfg.image_channels]
        return tf.tanh(h)

    def get_config(self):
        return {"config": self.config.to_dict()}


class Discriminator(tf_keras.Model):
    """BigGAN-deep projection discriminator: ``D((images, y), training) -> logits [B]``."""

    def __init__(self, config: BigGANConfig, **kwargs):
        kwargs.setdefault("name", "discriminator")
        super().__init__(**kwargs)
        self.config = cfg = config
        ch = cfg.discriminator_ch
        stages = D_STAGES[cfg.resolution]
        self.stem = SNConv2D(stages[0][0] * ch, 3, name="stem", **_conv_sn(cfg))
        self.blocks, self.attention_after = [], None
        res = cfg.resolution
        for cin, cout in stages:
            self.blocks.append(DiscriminatorBlock(cin * ch, cout * ch, True, name=f"block{len(self.blocks)}",
                                                  **_sn(cfg)))
            self.blocks.append(DiscriminatorBlock(cout * ch, cout * ch, False, name=f"block{len(self.blocks)}",
                                                  **_sn(cfg)))
            res //= 2
            if res == cfg.attention_resolution:
                self.attention_after = len(self.blocks) - 1
                self.attention = SelfAttention(cout * ch, name="attention", **_sn(cfg))
        width = stages[-1][1] * ch
        self.linear = SNDense(1, name="linear", **_conv_sn(cfg))
        self.embed = SNEmbedding(cfg.num_classes, width, name="class_embedding", **_conv_sn(cfg))

    def call(self, inputs, training=None):
        x, y = inputs
        h = self.stem(tf.cast(x, tf.float32), training=training)
        for i, block in enumerate(self.blocks):
            h = block(h, training=training)
            if i == self.attention_after:
                h = self.attention(h, training=training)
        h = tf.reduce_sum(tf.nn.relu(h), axis=[1, 2])
        projection = tf.reduce_sum(self.embed(y, training=training) * h, axis=-1)
        return tf.squeeze(self.linear(h, training=training), -1) + projection

    def get_config(self):
        return {"config": self.config.to_dict()}


def count_parameters(model) -> tuple[int, int]:
    """(trainable, non-trainable) parameter counts of a built model."""
    trainable = sum(int(tf.size(v)) for v in model.trainable_variables)
    return trainable, sum(int(tf.size(v)) for v in model.variables) - trainable


def build(config: BigGANConfig, batch_size: int = 2):
    """(G, D), both built by one call on zeros (so their variables exist, e.g. for counting)."""
    generator, discriminator = Generator(config), Discriminator(config)
    z = tf.zeros([batch_size, config.z_dim])
    y = tf.zeros([batch_size], tf.int32)
    discriminator((generator((z, y), training=False), y), training=False)
    return generator, discriminator
