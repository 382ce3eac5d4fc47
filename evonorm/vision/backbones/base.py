"""The Model Garden-style backbone model: a functional tf_keras.Model of endpoints by level."""

from __future__ import annotations

import tf_keras

from evonorm.vision.backbones.common import SERIALIZATION_PACKAGE

LEVELS = ("2", "3", "4", "5")
HEAD_LEVEL = "6"


@tf_keras.utils.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class Backbone(tf_keras.Model):
    """A backbone whose outputs are a dict of feature maps keyed by level ('2'..'5': stride 4..32).

    Subclasses build their graph and call ``super().__init__(inputs, endpoints, config)``, where
    ``config`` holds exactly their constructor arguments (so ``from_config(get_config())`` rebuilds
    the same architecture). As in Model Garden's MobileNet and EfficientNet, a network whose
    classifier starts with a wide 1x1 "head" convolution returns that feature map too, under level
    '6' (still stride 32): ``output_specs`` lists only levels '2'..'5' (what decoders such as FPN
    consume), while Model Garden's classification model takes ``endpoints[max(keys)]``, i.e. '6'.

    A network built for other decoder levels passes ``levels`` (SpineNet: '3'..'7', stride 8..128,
    the levels Model Garden's SpineNet serves to its decoders and Mask R-CNN); ``output_specs`` then
    lists exactly those levels. ``levels`` is derived by the subclass from its own arguments, so it
    is not part of ``config``.
    """

    def __init__(self, inputs, endpoints: dict, config: dict, levels=LEVELS, **kwargs):
        levels = tuple(str(level) for level in levels)
        missing = [level for level in levels if level not in endpoints]
        if missing:
            raise ValueError(f"backbone endpoints lack levels {missing}; got {sorted(endpoints)}.")
        super().__init__(inputs=inputs, outputs=endpoints, **kwargs)
        self._backbone_config = dict(config)
        self._output_specs = {level: endpoints[level].shape for level in levels}

    @property
    def output_specs(self):
        """Dict level -> TensorShape of the feature maps for decoders ('2'..'5' unless declared)."""
        return self._output_specs

    @property
    def norm_act(self) -> str:
        """Registry name of the norm-act layer this backbone was built with."""
        return self._backbone_config["norm_act"]

    def get_config(self):
        return dict(self._backbone_config, name=self.name)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)
