"""BigGAN's losses: the hinge loss of D and G, and the optional orthogonal regularization of G's kernels.

Hinge loss (Lim & Ye 2017; Miyato et al. 2018; BigGAN, Brock et al. 2019, Sec. 3)::

    L_D = mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))
    L_G = -mean(D(G(z)))

**Scaling under ``tf.distribute``.** Each replica sees ``global_batch / replicas`` examples and the
optimizer *sums* the replicas' gradients. So each replica divides its per-example losses by the *global*
batch (what ``tf.nn.compute_average_loss`` does); the summed gradient is then the gradient of the mean over
the global batch, whatever the number of replicas. Pass ``global_batch_size=None`` outside a strategy (or
for the plain mean); the value one replica returns is then its share, and ``strategy.reduce(SUM, ...)``
of the shares is the global mean loss.
"""

from __future__ import annotations

import tensorflow as tf

ORTHO_BETA = 1e-4  # BigGAN's default strength (BigGAN-PyTorch utils.py); no -deep config enables it


def _average(per_example, global_batch_size):
    per_example = tf.reshape(tf.cast(per_example, tf.float32), [-1])
    if global_batch_size is None:
        return tf.reduce_mean(per_example)
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


def discriminator_hinge_loss(real_logits, fake_logits, global_batch_size: int | None = None):
    """``mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))``, each mean over the global batch.

    Args:
      real_logits: ``D(x)`` for real images, ``[b]``.
      fake_logits: ``D(G(z))`` for generated images, ``[b]``.
      global_batch_size: the batch of all replicas together (see the module docstring), or ``None``.
    """
    return (_average(tf.nn.relu(1.0 - real_logits), global_batch_size)
            + _average(tf.nn.relu(1.0 + fake_logits), global_batch_size))


def generator_hinge_loss(fake_logits, global_batch_size: int | None = None):
    """``-mean(D(G(z)))`` over the global batch (see the module docstring)."""
    return -_average(fake_logits, global_batch_size)


def orthogonal_regularization(kernels, beta: float = ORTHO_BETA):
    """BigGAN's orthogonal regularization ``beta * sum ||W^T W ⊙ (1 - I)||_F^2`` over ``kernels``.

    Each kernel is flattened to ``[fan_in, out]`` (its last axis = output units), so ``W^T W`` is the Gram
    matrix of the filters and only their pairwise cosines are penalised, not their norms (BigGAN, Sec. 3.1).
    BigGAN-PyTorch leaves the shared class embedding out; pass only the kernels to regularize (see
    :func:`generator_kernels`). Off by default in every config: no public BigGAN-deep config uses it.

    Args:
      kernels: iterable of variables or tensors of rank >= 2.
      beta: strength; 1e-4 in BigGAN.

    Returns:
      A scalar; 0.0 when ``kernels`` is empty.
    """
    total = tf.constant(0.0, tf.float32)
    for kernel in kernels:
        w = tf.cast(kernel, tf.float32)
        w = tf.reshape(w, [-1, w.shape[-1]])
        gram = tf.matmul(w, w, transpose_a=True)
        off_diagonal = gram * (1.0 - tf.eye(tf.shape(gram)[0]))
        total += tf.reduce_sum(tf.square(off_diagonal))
    return beta * total


def generator_kernels(generator):
    """The generator's conv/linear kernels that orthogonal regularization covers (no embedding, no 1-D)."""
    return [v for v in generator.trainable_variables
            if v.shape.rank >= 2 and "embed" not in v.name.lower()]
