"""Helpers shared by the node modules: gradient shapes after broadcasting, axes, example inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "away_from",
    "expand_reduced",
    "grad_like",
    "normal",
    "normalize_axes",
    "randint",
    "spread",
    "unbroadcast",
    "uniform",
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
    ones = tuple(extra + i for i, n in enumerate(shape) if n == 1 and g.shape[extra + i] != 1)
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


def _rng(key: jax.Array) -> np.random.Generator:
    # Example inputs come from NumPy, seeded by the key: drawing them with jax.random would
    # compile a random-bits kernel for every new shape, which dominates checking small nodes.
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return np.random.default_rng(np.asarray(data, dtype=np.uint32).ravel().tolist())


def _floats(a: np.ndarray) -> jax.Array:
    """As JAX's default float dtype (float32, or float64 where x64 is on)."""
    return jnp.asarray(a, dtype=jnp.result_type(float))


def normal(key: jax.Array, shape: Sequence[int], loc: float = 0.0, scale: float = 1.0):
    """Normal example input (mean `loc`, deviation `scale`) of the default float dtype."""
    return _floats(_rng(key).normal(loc, scale, tuple(shape)))


def uniform(
    key: jax.Array, shape: Sequence[int], minval: float = 0.0, maxval: float = 1.0
) -> jax.Array:
    """Uniform example input in `[minval, maxval)` of the default float dtype."""
    return _floats(_rng(key).uniform(minval, maxval, tuple(shape)))


def randint(key: jax.Array, shape: Sequence[int], low: int, high: int) -> jax.Array:
    """Integer (int32) example input in `[low, high)`, e.g. labels or ids."""
    return jnp.asarray(_rng(key).integers(low, high, tuple(shape)), dtype=jnp.int32)


def away_from(key: jax.Array, shape: Sequence[int], point: Any = 0.0, gap: float = 0.2):
    """Normal example input kept at least `gap` away from `point` (a kink; a number or an
    array of `shape`), elementwise."""
    z = _rng(key).standard_normal(tuple(shape))
    return _floats(np.asarray(point) + np.where(z >= 0, z + gap, z - gap))


def spread(key: jax.Array, shape: Sequence[int], gap: float = 0.4) -> jax.Array:
    """Example input whose entries are pairwise at least `0.75 * gap` apart (distinct values
    `gap` apart, shuffled, plus a little noise): no ties, so max-type kinks stay far away."""
    r = _rng(key)
    n = int(np.prod(shape))
    grid = r.permutation(n) - (n - 1) / 2
    noise = r.uniform(0, gap / 4, n)
    return _floats((grid * gap + noise).reshape(tuple(shape)))
