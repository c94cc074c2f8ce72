r"""Reductions: sum, mean, max and log-sum-exp over chosen axes.

`axis` is `None` (all axes), an int or a tuple of ints; `keepdims` keeps the reduced axes with
size one. Every backward first re-inserts the reduced axes into $g$, then broadcasts it back over
them: a reduction is a fan-in, so its backward is a fan-out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from funcgraph.node import Example, node
from funcgraph.nodes._util import expand_reduced, normalize_axes, spread

__all__ = ["logsumexp", "max", "mean", "sum"]

Axis = int | Sequence[int] | None


def _count(shape: Sequence[int], axis: Axis) -> int:
    return math.prod(shape[a] for a in normalize_axes(axis, len(shape)))


def _matrix(key: jax.Array) -> tuple[jax.Array]:
    # Distinct, well separated entries keep `max` away from ties (its kinks).
    return (spread(key, (3, 5)),)


def _matrix_axis(key: jax.Array) -> Example:
    return Example((spread(key, (3, 5)),), {"axis": 1, "keepdims": False})


@node(save="inputs", example=[_matrix, _matrix_axis])
def sum(x, *, axis: Axis = None, keepdims: bool = False):
    r"""Sum over `axis`.

    **Forward:** $y = \sum_{i \in \text{axis}} x_i$

    **Backward:** $\frac{\partial L}{\partial x_i} = g$ (broadcast back over the reduced axes).
    """
    return jnp.sum(x, axis=axis, keepdims=keepdims)


@sum.backward
def _sum_backward(x, out, g, *, axis: Axis = None, keepdims: bool = False):
    return jnp.broadcast_to(expand_reduced(g, axis, x.ndim, keepdims), x.shape)


@node(save="inputs", example=[_matrix, _matrix_axis])
def mean(x, *, axis: Axis = None, keepdims: bool = False):
    r"""Mean over `axis` ($n$ elements reduced per output).

    **Forward:** $y = \frac1n \sum_{i \in \text{axis}} x_i$

    **Backward:** $\frac{\partial L}{\partial x_i} = g / n$
    """
    return jnp.mean(x, axis=axis, keepdims=keepdims)


@mean.backward
def _mean_backward(x, out, g, *, axis: Axis = None, keepdims: bool = False):
    n = _count(x.shape, axis)
    return jnp.broadcast_to(expand_reduced(g, axis, x.ndim, keepdims), x.shape) / n


def _max_kinks(x, *, axis: Axis = None, keepdims: bool = False) -> float:
    # Half the gap between the largest and second largest entry of each reduced group.
    axes = normalize_axes(axis, x.ndim)
    rest = [a for a in range(x.ndim) if a not in axes]
    flat = jnp.transpose(x, (*rest, *axes)).reshape((-1, _count(x.shape, axis)))
    if flat.shape[1] < 2:
        return float("inf")
    top2 = jax.lax.top_k(flat, 2)[0]
    return float(jnp.min(top2[:, 0] - top2[:, 1])) / 2


@node(example=[_matrix, _matrix_axis], kinks=_max_kinks)
def max(x, *, axis: Axis = None, keepdims: bool = False):
    r"""Maximum over `axis`: routes the gradient to the maximal entries.

    **Forward:** $y = \max_{i \in \text{axis}} x_i$

    **Backward:** $\frac{\partial L}{\partial x_i} = g\,\frac{[x_i = y]}{\sum_j [x_j = y]}$

    **Ties:** the gradient is split equally between tied maxima (as `jax.grad(jnp.max)`
    does); a tie is a kink.
    """
    return jnp.max(x, axis=axis, keepdims=keepdims)


@max.backward
def _max_backward(x, out, g, *, axis: Axis = None, keepdims: bool = False):
    axes = normalize_axes(axis, x.ndim)
    y = expand_reduced(out, axis, x.ndim, keepdims)
    hit = (x == y).astype(x.dtype)
    share = hit / jnp.sum(hit, axis=axes, keepdims=True)
    return share * expand_reduced(g, axis, x.ndim, keepdims)


@node(example=[_matrix, _matrix_axis])
def logsumexp(x, *, axis: Axis = None, keepdims: bool = False):
    r"""Log-sum-exp over `axis`, computed stably (the maximum is subtracted first).

    **Forward:** $y = \log \sum_{i \in \text{axis}} e^{x_i}$

    **Backward:** $\frac{\partial L}{\partial x_i} = g\, e^{x_i - y}$ (the softmax of $x$).
    """
    axes = normalize_axes(axis, x.ndim)
    m = jax.lax.stop_gradient(jnp.max(x, axis=axes, keepdims=True))
    # An all -inf group would give inf - inf; shifting by 0 there keeps the result -inf.
    m = jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m))
    y = jnp.log(jnp.sum(jnp.exp(x - m), axis=axes, keepdims=True)) + m
    return y if keepdims else jnp.squeeze(y, axis=axes)


@logsumexp.backward
def _logsumexp_backward(x, out, g, *, axis: Axis = None, keepdims: bool = False):
    y = expand_reduced(out, axis, x.ndim, keepdims)
    return expand_reduced(g, axis, x.ndim, keepdims) * jnp.exp(x - y)
