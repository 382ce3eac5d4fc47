"""tf_keras (Keras 2) layers: what Model Garden and every model of this project use, whatever ``tf.keras`` resolves to.

``from evonorm.layers import legacy; legacy.EvoNormS0()``; ``legacy.create_norm_act(name, ...)``.
"""

from evonorm.layers import generations, registry

list_norm_acts = registry.list_norm_acts
create_norm_act, get_norm_act_class, __getattr__, __dir__ = registry.bind_generation(
    __name__, generations.TF_KERAS)
