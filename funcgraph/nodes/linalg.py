r"""Vector and matrix nodes: products, the dense layer, and shape plumbing.

The shape nodes (transpose, reshape, concatenate, split, take) do no arithmetic: their backward
moves the gradient back to where each input element went, which is the forward's inverse
permutation (or, for gathers, a scatter-add: an element read twice is a fan-out).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from funcgraph.node import Example, node
from funcgraph.nodes._util import grad_like, normal, randint

__all__ = [
    "concatenate",
    "dense",
    "dot",
    "matmul",
    "reshape",
    "split",
    "take",
    "transpose",
]


def _swap(a: jax.Array) -> jax.Array:
    return jnp.swapaxes(a, -1, -2)


def _matmul_example(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    k1, k2 = jax.random.split(key)
    return normal(k1, (3, 4)), normal(k2, (4, 2))


def _batched_matmul_example(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    k1, k2 = jax.random.split(key)
    return normal(k1, (2, 3, 4)), normal(k2, (4, 2))


@node(example=[_matmul_example, _batched_matmul_example])
def matmul(a, b):
    r"""Matrix product, batched over broadcast leading axes (as `jnp.matmul`; 1-D operands
    are promoted to a row or column vector and the added axis removed again).

    **Forward:** $C = A B$, $C_{ij} = \sum_k A_{ik} B_{kj}$

    **Backward:** $\frac{\partial L}{\partial A} = G B^\top,\quad
    \frac{\partial L}{\partial B} = A^\top G$ (summed over broadcast batch axes).
    """
    return jnp.matmul(a, b)


@matmul.backward
def _matmul_backward(a, b, out, g):
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g[..., None] if b.ndim == 1 else g
    g2 = jnp.expand_dims(g2, -2) if a.ndim == 1 else g2
    ga = grad_like(jnp.matmul(g2, _swap(b2)), a2).reshape(a.shape)
    gb = grad_like(jnp.matmul(_swap(a2), g2), b2).reshape(b.shape)
    return ga, gb


def _dot_example(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    k1, k2 = jax.random.split(key)
    return normal(k1, (3, 5)), normal(k2, (5,))


@node(example=_dot_example)
def dot(a, b):
    r"""Inner product over the last axis, batched over broadcast leading axes (for two
    vectors, the dot product $a \cdot b$; for a matrix and a vector, a matrix-vector product).

    **Forward:** $y = \sum_k a_k b_k$

    **Backward:** $\frac{\partial L}{\partial a_k} = g\, b_k,\quad
    \frac{\partial L}{\partial b_k} = g\, a_k$ (summed over broadcast axes).
    """
    return jnp.sum(a * b, axis=-1)


@dot.backward
def _dot_backward(a, b, out, g):
    ge = g[..., None]
    return grad_like(ge * b, a), grad_like(ge * a, b)


def _dense_example(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    k1, k2, k3 = jax.random.split(key, 3)
    return normal(k1, (4, 3)), normal(k2, (3, 5)), normal(k3, (5,))


@node(save="inputs", example=_dense_example)
def dense(x, w, b):
    r"""Fully connected (affine) layer.

    **Arguments:**

    - `x`: inputs, `(..., in)`.
    - `w`: weights, `(in, out)`.
    - `b`: bias, `(out,)`.

    **Returns:** `(..., out)`.

    **Forward:** $y = x W + b$

    **Backward:** $\frac{\partial L}{\partial x} = G W^\top,\quad
    \frac{\partial L}{\partial W} = \sum_{\text{batch}} x^\top G,\quad
    \frac{\partial L}{\partial b} = \sum_{\text{batch}} G$
    """
    return jnp.matmul(x, w) + b


@dense.backward
def _dense_backward(x, w, b, out, g):
    x2 = x.reshape((-1, x.shape[-1]))
    g2 = g.reshape((-1, g.shape[-1]))
    return jnp.matmul(g, w.T), jnp.matmul(x2.T, g2), jnp.sum(g2, axis=0)


@node(
    save="none",
    example=[
        lambda key: (normal(key, (3, 4)),),
        lambda key: Example((normal(key, (2, 3, 4)),), {"axes": (1, 2, 0)}),
    ],
)
def transpose(x, *, axes: Sequence[int] | None = None):
    r"""Permute axes (reverse them when `axes` is `None`).

    **Forward:** $y = x^\top$, i.e. $y_{i_{\pi(1)} \dots i_{\pi(n)}} = x_{i_1 \dots i_n}$

    **Backward:** $\frac{\partial L}{\partial x} = g$ permuted by the inverse permutation
    $\pi^{-1}$.
    """
    return jnp.transpose(x, axes)


@transpose.backward
def _transpose_backward(x, out, g, *, axes: Sequence[int] | None = None):
    if axes is None:
        return jnp.transpose(g)
    return jnp.transpose(g, tuple(int(i) for i in np.argsort([a % g.ndim for a in axes])))


@node(
    save="inputs",
    example=lambda key: Example((normal(key, (3, 4)),), {"shape": (2, 6)}),
)
def reshape(x, *, shape: Sequence[int]):
    r"""Reshape (row-major; one entry of `shape` may be -1).

    **Forward:** $y = \operatorname{reshape}(x)$

    **Backward:** $\frac{\partial L}{\partial x} = \operatorname{reshape}(g)$ to $x$'s shape.
    """
    return jnp.reshape(x, shape)


@reshape.backward
def _reshape_backward(x, out, g, *, shape: Sequence[int]):
    return jnp.reshape(g, x.shape)


def _concat_example(key: jax.Array) -> Example:
    k1, k2 = jax.random.split(key)
    return Example(((normal(k1, (2, 3)), normal(k2, (2, 2))),), {"axis": 1})


@node(save="inputs", example=_concat_example)
def concatenate(xs, *, axis: int = 0):
    r"""Join a tuple (or list) of arrays along `axis`.

    **Forward:** $y = [x_1; x_2; \dots; x_n]$

    **Backward:** $\frac{\partial L}{\partial x_k} = g$ sliced to $x_k$'s segment; the gradient
    has the structure of `xs`.
    """
    return jnp.concatenate(list(xs), axis=axis)


@concatenate.backward
def _concatenate_backward(xs, out, g, *, axis: int = 0):
    bounds = np.cumsum([x.shape[axis] for x in xs])[:-1]
    parts = jnp.split(g, [int(i) for i in bounds], axis=axis)
    return type(xs)(parts)


@node(
    save="none",
    example=[
        lambda key: Example((normal(key, (4, 3)),), {"sections": 2}),
        lambda key: Example((normal(key, (2, 5)),), {"sections": (1, 3), "axis": 1}),
    ],
)
def split(x, *, sections: int | Sequence[int], axis: int = 0):
    r"""Split along `axis` into `sections` equal parts (an int) or at the given indices; returns
    a tuple.

    **Forward:** $(y_1, \dots, y_n) = x$ cut along `axis`

    **Backward:** $\frac{\partial L}{\partial x} = [g_1; \dots; g_n]$ (concatenated).
    """
    return tuple(jnp.split(x, sections, axis=axis))


@split.backward
def _split_backward(x, out, g, *, sections: int | Sequence[int], axis: int = 0):
    return jnp.concatenate(list(g), axis=axis)


def _take_example(key: jax.Array) -> Example:
    k1, k2 = jax.random.split(key)
    # Repeated indices exercise the scatter-add (fan-out) in the backward.
    return Example((normal(k1, (4, 3)), randint(k2, (5,), 0, 3)), {"axis": 1})


@node(
    save="inputs",
    example=[
        lambda key: (normal(key, (5, 3)), jnp.array([0, 2, 2, 4], dtype=jnp.int32)),
        _take_example,
    ],
)
def take(x, indices, *, axis: int = 0):
    r"""Gather entries of `x` along `axis` at integer `indices` (any shape; must be in range).
    `indices` gets no gradient.

    **Forward:** $y_{\dots, j, \dots} = x_{\dots, \text{indices}_j, \dots}$

    **Backward:** $\frac{\partial L}{\partial x_{\dots, i, \dots}} =
    \sum_{j:\ \text{indices}_j = i} g_{\dots, j, \dots}$ (a scatter-add: an entry gathered
    twice collects both gradients).
    """
    return jnp.take(x, indices, axis=axis)


@take.backward
def _take_backward(x, indices, out, g, *, axis: int = 0):
    ax = axis % x.ndim
    # g has x's axes with axis `ax` replaced by the indices' axes; flatten those to one axis.
    flat = g.reshape((*x.shape[:ax], indices.size, *x.shape[ax + 1 :]))
    flat = jnp.moveaxis(flat, ax, 0)
    gx = jnp.zeros((x.shape[ax], *x.shape[:ax], *x.shape[ax + 1 :]), dtype=g.dtype)
    gx = gx.at[indices.reshape(-1)].add(flat)
    return jnp.moveaxis(gx, 0, ax), None
