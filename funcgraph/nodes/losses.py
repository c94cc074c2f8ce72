r"""Losses: each returns the scalar mean over the batch.

Classification losses take `(..., C)` scores and integer labels of shape `(...)`; the mean is over
every leading position. Labels get no gradient. The fused losses save only what their backward
needs: softmax cross-entropy keeps the probabilities (and the labels), never the logits.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from funcgraph.errors import NodeInputError, ShapeMismatchError
from funcgraph.node import node
from funcgraph.nodes._util import normal, randint, spread, uniform

__all__ = [
    "binary_cross_entropy_with_logits",
    "mse",
    "softmax_cross_entropy",
    "svm_hinge",
]


def _classification_example(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    k1, k2 = jax.random.split(key)
    return normal(k1, (4, 5)), randint(k2, (4,), 0, 5)


def _hinge_example(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    k1, k2 = jax.random.split(key)
    # Score differences are 0.4 k + noise in (-0.1, 0.1), so every margin s_j - s_y + 1 is at
    # least 0.1 from its kink at 0.
    return spread(k1, (4, 5), gap=0.4), randint(k2, (4,), 0, 5)


def _check_labels(name: str, scores: jax.Array, labels: jax.Array) -> None:
    if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
        raise NodeInputError(
            f"node {name!r}: input 'labels' must hold integer class indices, "
            f"got dtype {jnp.result_type(labels)}"
        )
    if tuple(jnp.shape(labels)) != tuple(scores.shape[:-1]):
        raise ShapeMismatchError(
            f"node {name!r}: input 'labels' has shape {tuple(jnp.shape(labels))}, expected "
            f"{tuple(scores.shape[:-1])} (the scores' shape without the class axis)"
        )


def _one_hot(labels: jax.Array, like: jax.Array) -> jax.Array:
    return jax.nn.one_hot(labels, like.shape[-1], dtype=like.dtype)


def _softmax_ce_save(logits, labels, out):
    m = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    e = jnp.exp(logits - m)
    return e / jnp.sum(e, axis=-1, keepdims=True), labels


@node(save=_softmax_ce_save, example=_classification_example)
def softmax_cross_entropy(logits, labels):
    r"""Softmax cross-entropy with integer labels, fused; saves only the probabilities.

    **Arguments:**

    - `logits`: `(..., C)`.
    - `labels`: integer classes in `[0, C)`, shape `(...)`.

    **Returns:** the mean loss, a scalar.

    With $N$ the number of examples (all leading positions) and $p = \operatorname{softmax}(z)$:

    **Forward:** $L = \frac1N \sum_n \Big(\log \sum_c e^{z_{nc}} - z_{n y_n}\Big)$

    **Backward:** $\frac{\partial L}{\partial z_{nc}} = \frac{g}{N}\,(p_{nc} - [c = y_n])$
    """
    _check_labels("softmax_cross_entropy", logits, labels)
    m = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    lse = jnp.log(jnp.sum(jnp.exp(logits - m), axis=-1)) + m[..., 0]
    picked = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return jnp.mean(lse - picked)


@softmax_cross_entropy.backward
def _softmax_cross_entropy_backward(residuals, g):
    probs, labels = residuals
    n = math.prod(probs.shape[:-1])
    return (probs - _one_hot(labels, probs)) * (g / n), None


def _hinge_margins(scores, labels, margin):
    correct = jnp.take_along_axis(scores, labels[..., None], axis=-1)
    m = scores - correct + jnp.asarray(margin, dtype=scores.dtype)
    # The correct class is not compared with itself.
    is_label = jnp.arange(scores.shape[-1], dtype=labels.dtype) == labels[..., None]
    return m, is_label


def _svm_hinge_kinks(scores, labels, *, margin: float = 1.0) -> float:
    m, is_label = _hinge_margins(scores, labels, margin)
    # Moving s_j and s_y by d each changes the margin by 2d.
    return float(jnp.min(jnp.where(is_label, jnp.inf, jnp.abs(m)))) / 2


@node(save="inputs", example=_hinge_example, kinks=_svm_hinge_kinks)
def svm_hinge(scores, labels, *, margin: float = 1.0):
    r"""Multiclass SVM (hinge) loss, as in CS231n, with margin $\Delta$.

    **Arguments:**

    - `scores`: `(..., C)`.
    - `labels`: integer classes in `[0, C)`, shape `(...)`.
    - `margin`: $\Delta$ (static).

    **Returns:** the mean loss, a scalar.

    **Forward:** $L = \frac1N \sum_n \sum_{j \ne y_n} \max(0,\ s_{nj} - s_{n y_n} + \Delta)$

    **Backward:** with $m_{nj} = [s_{nj} - s_{n y_n} + \Delta > 0]$ for $j \ne y_n$:
    $\frac{\partial L}{\partial s_{nj}} = \frac{g}{N} m_{nj}$,
    $\frac{\partial L}{\partial s_{n y_n}} = -\frac{g}{N} \sum_{j \ne y_n} m_{nj}$
    (the margin's zero crossings are kinks; the gradient there counts the term as inactive).
    """
    _check_labels("svm_hinge", scores, labels)
    m, is_label = _hinge_margins(scores, labels, margin)
    active = jnp.where(is_label | (m <= 0), jnp.zeros_like(m), m)
    return jnp.mean(jnp.sum(active, axis=-1))


@svm_hinge.backward
def _svm_hinge_backward(scores, labels, out, g, *, margin: float = 1.0):
    m, is_label = _hinge_margins(scores, labels, margin)
    active = ((m > 0) & ~is_label).astype(scores.dtype)
    n = math.prod(scores.shape[:-1])
    count = jnp.sum(active, axis=-1, keepdims=True)
    ds = active - jnp.where(is_label, count, jnp.zeros_like(count))
    return ds * (g / n), None


def _regression_example(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    k1, k2 = jax.random.split(key)
    return normal(k1, (4, 3)), normal(k2, (4, 3))


@node(save="inputs", example=_regression_example)
def mse(pred, target):
    r"""Mean squared error over all $N$ elements.

    **Forward:** $L = \frac1N \sum_i (p_i - t_i)^2$

    **Backward:** $\frac{\partial L}{\partial p_i} = \frac{2g}{N}(p_i - t_i),\quad
    \frac{\partial L}{\partial t_i} = -\frac{2g}{N}(p_i - t_i)$
    """
    d = pred - target
    return jnp.mean(d * d)


@mse.backward
def _mse_backward(pred, target, out, g):
    d = (pred - target) * (2 * g / pred.size)
    return d, -d


def _bce_example(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    k1, k2 = jax.random.split(key)
    return normal(k1, (4, 3)), uniform(k2, (4, 3))


@node(save="inputs", example=_bce_example)
def binary_cross_entropy_with_logits(logits, targets):
    r"""Binary cross-entropy on logits $z$ with targets $t \in [0, 1]$, mean over all $N$
    elements, computed stably as $\operatorname{softplus}(z) - z t$.

    **Forward:** $L = \frac1N \sum_i \big(\log(1 + e^{z_i}) - z_i t_i\big)$

    **Backward:** $\frac{\partial L}{\partial z_i} = \frac{g}{N}(\sigma(z_i) - t_i),\quad
    \frac{\partial L}{\partial t_i} = -\frac{g}{N} z_i$
    """
    return jnp.mean(jnp.logaddexp(logits, jnp.zeros_like(logits)) - logits * targets)


@binary_cross_entropy_with_logits.backward
def _bce_backward(logits, targets, out, g):
    scale = g / logits.size
    return (jax.nn.sigmoid(logits) - targets) * scale, -logits * scale
