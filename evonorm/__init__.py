"""evonorm: Evolving Normalization-Activation Layers (Liu et al., NeurIPS 2020) in TensorFlow."""

__version__ = "0.1.0"
