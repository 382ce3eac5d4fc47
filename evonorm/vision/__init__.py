"""Vision models whose normalization-activation comes from one seam: ``evonorm.layers.legacy.create_norm_act``."""
