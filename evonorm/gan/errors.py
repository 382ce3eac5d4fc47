"""The one error type of the GAN entry points: a usage or environment problem, reported as one line."""


class GANError(Exception):
    """A usage or environment problem, reported as one clear line."""
