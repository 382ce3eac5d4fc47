"""The one registry of normalization-activation layers: ``create_norm_act(name, **kwargs)``.

Every model in this project takes its normalization-activation from ``create_norm_act`` and never
instantiates a BatchNormalization or an activation directly; that is the seam through which any
EvoNorm, baseline or searched layer replaces BN-ReLU.
"""

from __future__ import annotations

from evonorm.layers import generations

_CANONICAL = {mixin.registry_name: mixin.__name__ for mixin in generations.ALL_MIXINS}
_ALIASES = {"bn_swish": "bn_silu", "gn_swish": "gn_silu", "frn_tlu": "frn", "evonorm_b0_no_v1_x":
            "evonorm_b0_no_v1x"}


def list_norm_acts() -> list[str]:
    """Sorted registry names of every norm-act layer (aliases such as 'bn_swish' not repeated)."""
    return sorted(_CANONICAL)


def canonical_name(name: str) -> str:
    """Maps a user-facing name ('EvoNorm-S0', 'bn_swish') to its registry key, or raises ValueError."""
    if not isinstance(name, str):
        raise TypeError(f"norm-act name must be a string, got {type(name).__name__}: {name!r}")
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in _CANONICAL:
        raise ValueError(f"unknown norm-act layer {name!r}; known layers: {', '.join(list_norm_acts())} "
                         f"(aliases: {', '.join(sorted(_ALIASES))}).")
    return key


def get_norm_act_class(name: str, generation: str | None = None):
    """The Keras layer class registered under ``name`` for a Keras generation.

    Args:
      name: registry name, e.g. ``'evonorm_s0'``.
      generation: ``'tf_keras'`` (Keras 2, Model Garden) or ``'keras3'``; default: the generation that
        ``tf.keras`` resolves to in this process.
    """
    generation = generation or generations.default_generation()
    return generations.layer_classes(generation)[_CANONICAL[canonical_name(name)]]


def create_norm_act(name: str, /, apply_act: bool = True, generation: str | None = None, **kwargs):
    """Creates the norm-act layer registered under ``name``.

    Args:
      name: registry name (see ``list_norm_acts()``), e.g. ``'evonorm_b0'``, ``'bn_relu'``;
        positional-only, so ``name=`` in ``kwargs`` is the Keras layer name.
      apply_act: False gives the no-nonlinearity variant, for positions such as the last norm before a
        residual add (see ``NormActBase`` for what remains).
      generation: Keras generation of the returned layer (see ``get_norm_act_class``).
      **kwargs: the shared constructor contract: ``groups``, ``group_size``, ``epsilon``, ``momentum``,
        ``synchronized``, ``data_format``, ``no_act_mode``, ``zero_init``, ``name``, ``dtype``...

    Raises:
      ValueError: for an unknown name, listing the known ones.
    """
    return get_norm_act_class(name, generation)(apply_act=apply_act, **kwargs)


def bind_generation(module_name: str, generation: str | None):
    """Module attributes for a namespace bound to one Keras generation (``legacy``, ``keras3``, and
    the package itself): the layer classes by name plus the registry functions bound to it.

    Returns ``(create_norm_act, get_norm_act_class, __getattr__, __dir__)`` for the module to export.
    """
    def resolve():
        return generation or generations.default_generation()

    def create(name, /, apply_act=True, generation=None, **kwargs):  # positional-only: frees `name=`
        return create_norm_act(name, apply_act=apply_act, generation=generation or resolve(), **kwargs)

    def get_class(name, generation=None):
        return get_norm_act_class(name, generation or resolve())

    create.__doc__ = create_norm_act.__doc__
    get_class.__doc__ = get_norm_act_class.__doc__

    def module_getattr(name):
        classes = generations.layer_classes(resolve())
        if name in classes:
            return classes[name]
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    def module_dir():
        import sys  # noqa: PLC0415
        return sorted(set(vars(sys.modules[module_name])) | set(generations.layer_classes(resolve())))

    return create, get_class, module_getattr, module_dir
