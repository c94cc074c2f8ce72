"""Helpers shared by the node modules: gradient shapes after broadcasting, axes, example inputs."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "away_from",
    "expand_reduced",
    "grad_like",
    "normal",
    "normalize_axes",
    "spread",
    "unbroadcast",
]


def unbroadcast(g: jax.Array, shape: Sequence[int]) -> jax.Array:
    r"""Sum a gradient back to the shape of an input that was broadcast in the forward.

    Broadcasting copies an input along new leading axes and along axes of size one; each copy is
    a fan-out edge of the diagram, so the gradients of the copies add up:
    $\frac{\partial L}{\partial x} = \sum_{\text{copies}} g$.

    **Arguments:**

    - `g`: the gradient with the broadcast (output) shape.
    - `shape`: the input's shape.

    **Returns:** `g` summed over the broadcast axes, with shape `shape`.
    """
    shape = tuple(shape)
    extra = g.ndim - len(shape)
    if extra < 0:
        raise ValueError(f"unbroadcast: gradient shape {g.shape} has fewer axes than {shape}")
    lead = tuple(range(extra))
    ones = tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and g.shape[extra + i] != 1
    )
    if lead or ones:
        g = jnp.sum(g, axis=lead + ones, keepdims=True)
    return g.reshape(shape)


def grad_like(g: jax.Array, x: jax.Array) -> jax.Array:
    """`unbroadcast(g, x.shape)` in `x`'s dtype (a gradient has its input's shape and dtype)."""
    return unbroadcast(g, jnp.shape(x)).astype(jnp.result_type(x))


def normalize_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """The reduction axes as a sorted tuple of non-negative ints (`None` means all axes)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(sorted(int(a) % ndim if ndim else 0 for a in axes))


def expand_reduced(
    g: jax.Array, axis: int | Sequence[int] | None, ndim: int, keepdims: bool
) -> jax.Array:
    """Re-insert the reduced axes (as size one) into a reduction's output gradient."""
    if keepdims:
        return g
    return jnp.expand_dims(g, normalize_axes(axis, ndim))


def normal(key: jax.Array, shape: Sequence[int]) -> jax.Array:
    """Standard normal example input of the default float dtype."""
    return jax.random.normal(key, tuple(shape))


def away_from(key: jax.Array, shape: Sequence[int], point: float = 0.0, gap: float = 0.2):
    """Normal example input kept at least `gap` away from `point` (a kink), elementwise."""
    z = jax.random.normal(key, tuple(shape))
    return point + jnp.where(z >= 0, z + gap, z - gap)


def spread(key: jax.Array, shape: Sequence[int], gap: float = 0.4) -> jax.Array:
    """Example input whose entries are pairwise at least `0.75 * gap` apart (distinct values
    `gap` apart, shuffled, plus a little noise): no ties, so max-type kinks stay far away."""
    k1, k2 = jax.random.split(key)
    n = int(np.prod(shape))
    grid = jax.random.permutation(k1, n).astype(jnp.result_type(float)) - (n - 1) / 2
    noise = jax.random.uniform(k2, (n,), maxval=gap / 4)
    return (grid * gap + noise).reshape(tuple(shape))
