"""BigGAN-deep with EvoNorms (paper Sec. 5.3, Table 6): models, losses, EMA, metrics, training."""
