"""Keras 3 layers, for models built with plain Keras 3, whatever ``tf.keras`` resolves to.

``from evonorm.layers import keras3; keras3.EvoNormS0()``; ``keras3.create_norm_act(name, ...)``.
"""

from evonorm.layers import generations, registry

list_norm_acts = registry.list_norm_acts
create_norm_act, get_norm_act_class, __getattr__, __dir__ = registry.bind_generation(
    __name__, generations.KERAS3)
