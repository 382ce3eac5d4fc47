"""Image backbones with the norm-act seam: ResNet v1/v2, MobileNetV2, MnasNet-B1, EfficientNet-B0..B7,
SpineNet-49S/49/96/143.

Every builder takes ``(norm_act='bn_relu', norm_kwargs=None, input_shape=..., width/depth ...)`` and
returns a tf_keras Model whose outputs are a dict of feature maps by level ('2'..'5' = stride 4..32,
plus '6' = the 1x1 head conv of the mobile networks; SpineNet: '3'..'7' = stride 8..128) with
``output_specs``, as Model Garden backbones.
``evonorm.vision.model_garden`` registers them in Model Garden's backbone factory.
"""

from evonorm.vision.backbones.base import Backbone
from evonorm.vision.backbones.efficientnet import EfficientNet, classifier_dropout, efficientnet
from evonorm.vision.backbones.heads import (classification_model, l2_weight_decay, norm_act_variables,
                                           weight_decay_variables)
from evonorm.vision.backbones.mobilenet import MobileNet, mnasnet_b1, mobilenet_v2
from evonorm.vision.backbones.resnet import ResNet, resnet
from evonorm.vision.backbones.spinenet import SpineNet, spinenet

__all__ = ["Backbone", "ResNet", "MobileNet", "EfficientNet", "SpineNet", "resnet", "mobilenet_v2",
           "mnasnet_b1", "efficientnet", "spinenet", "classification_model", "classifier_dropout",
           "weight_decay_variables", "norm_act_variables", "l2_weight_decay"]
