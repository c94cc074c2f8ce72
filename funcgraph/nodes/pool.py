r"""2-D pooling over NHWC inputs (`(N, H, W, C)`), without padding ("VALID" windows).

`window` and `stride` are ints or `(height, width)` pairs; the output has
$\lfloor (H - k) / s \rfloor + 1$ rows (likewise columns). Both backward rules loop over the
$k_h k_w$ offsets inside a window (a static, small loop): the input entries at offset $(u, v)$ of
every window form a strided grid, and the gradient for that grid is placed back with a strided
(interior-padded) copy, so overlapping windows add their contributions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from funcgraph.errors import NodeInputError, ShapeMismatchError
from funcgraph.node import Example, node
from funcgraph.nodes._util import spread

__all__ = ["avg_pool2d", "max_pool2d"]

Size = int | Sequence[int]


def _two(name: str, v: Size, what: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(int(i) for i in v)
    if len(t) != 2 or min(t) < 1:
        raise NodeInputError(
            f"node {name!r}: {what}={v!r}, expected a positive int or a pair of them"
        )
    return t  # type: ignore[return-value]


def _geometry(name: str, x, window: Size, stride: Size):
    if x.ndim != 4:
        raise ShapeMismatchError(
            f"node {name!r}: input 'x' has shape {tuple(x.shape)}, expected (N, H, W, C)"
        )
    k = _two(name, window, "window")
    s = _two(name, stride, "stride")
    if x.shape[1] < k[0] or x.shape[2] < k[1]:
        raise ShapeMismatchError(
            f"node {name!r}: input 'x' of shape {tuple(x.shape)} is smaller than the window {k}"
        )
    out = tuple((x.shape[1 + i] - k[i]) // s[i] + 1 for i in range(2))
    return k, s, out


def _offsets(x, k, s, out) -> Iterator[tuple[tuple[int, int], jax.Array]]:
    """Each in-window offset (u, v) with the input entries at that offset of every window."""
    for u in range(k[0]):
        for v in range(k[1]):
            start = (0, u, v, 0)
            limit = (
                x.shape[0],
                u + (out[0] - 1) * s[0] + 1,
                v + (out[1] - 1) * s[1] + 1,
                x.shape[3],
            )
            yield (u, v), jax.lax.slice(x, start, limit, (1, s[0], s[1], 1))


def _place(c: jax.Array, offset: tuple[int, int], s, shape) -> jax.Array:
    """Put a per-window array back on the input grid at `offset` (zeros elsewhere)."""
    config = [(0, 0, 0)]
    for i in range(2):
        low = offset[i]
        span = (c.shape[1 + i] - 1) * s[i] + 1
        config.append((low, shape[1 + i] - low - span, s[i] - 1))
    config.append((0, 0, 0))
    return jax.lax.pad(c, jnp.zeros((), c.dtype), config)


def _pool_example(key: jax.Array) -> tuple[jax.Array]:
    # Distinct, well separated entries keep max pooling away from ties (its kinks).
    return (spread(key, (2, 4, 4, 3), gap=0.1),)


def _overlap_example(key: jax.Array) -> Example:
    return Example((spread(key, (1, 5, 5, 2), gap=0.1),), {"window": 3, "stride": 2})


def _max_pool_kinks(x, *, window: Size = 2, stride: Size = 2) -> float:
    k, s, out = _geometry("max_pool2d", x, window, stride)
    if k[0] * k[1] < 2:
        return float("inf")
    patches = jnp.stack([p for _, p in _offsets(x, k, s, out)])
    top2 = -jnp.sort(-patches, axis=0)[:2]
    # A tie inside any window is a kink; both tied entries may move, hence the half.
    return float(jnp.min(top2[0] - top2[1])) / 2


@node(example=[_pool_example, _overlap_example], kinks=_max_pool_kinks)
def max_pool2d(x, *, window: Size = 2, stride: Size = 2):
    r"""Max pooling over `window` × `window` patches every `stride` entries (NHWC).

    **Arguments:**

    - `x`: `(N, H, W, C)`.
    - `window`, `stride`: ints or `(height, width)` pairs (static).

    **Returns:** `(N, H_out, W_out, C)`.

    **Forward:** $y_{n,i,j,c} = \max_{0 \le u < k_h,\ 0 \le v < k_w}
    x_{n,\, s i + u,\, s j + v,\, c}$

    **Backward:** $\frac{\partial L}{\partial x_{n,p,q,c}} = \sum_{i,j}
    g_{n,i,j,c}\,[(p, q) = \operatorname{argmax}_{(si+u,\, sj+v)}]$: each window routes its
    gradient to its maximum.

    **Ties:** within a window the first maximal entry in row-major order gets the whole
    gradient (as XLA's select-and-scatter does); a tie is a kink.
    """
    k, s, _ = _geometry("max_pool2d", x, window, stride)
    # A NumPy (concrete) init value, so that JAX recognizes the max-monoid reduction (which it
    # can differentiate) even under jit.
    init = np.array(-np.inf, dtype=x.dtype)
    return jax.lax.reduce_window(x, init, jax.lax.max, (1, *k, 1), (1, *s, 1), "VALID")


@max_pool2d.backward
def _max_pool2d_backward(x, out, g, *, window: Size = 2, stride: Size = 2):
    k, s, shape_out = _geometry("max_pool2d", x, window, stride)
    dx = jnp.zeros_like(x)
    taken = jnp.zeros(out.shape, dtype=bool)
    zero = jnp.zeros_like(g)
    for offset, patch in _offsets(x, k, s, shape_out):
        hit = (patch == out) & ~taken
        taken = taken | hit
        dx = dx + _place(jnp.where(hit, g, zero), offset, s, x.shape)
    return dx


@node(save="inputs", example=[_pool_example, _overlap_example])
def avg_pool2d(x, *, window: Size = 2, stride: Size = 2):
    r"""Average pooling over `window` × `window` patches every `stride` entries (NHWC).

    **Arguments:**

    - `x`: `(N, H, W, C)`.
    - `window`, `stride`: ints or `(height, width)` pairs (static).

    **Returns:** `(N, H_out, W_out, C)`.

    **Forward:** $y_{n,i,j,c} = \frac{1}{k_h k_w} \sum_{u,v} x_{n,\, s i + u,\, s j + v,\, c}$

    **Backward:** $\frac{\partial L}{\partial x_{n,p,q,c}} = \frac{1}{k_h k_w}
    \sum_{(i,j):\ (p,q) \in \text{window}(i,j)} g_{n,i,j,c}$
    """
    k, s, _ = _geometry("avg_pool2d", x, window, stride)
    zero = np.zeros((), dtype=x.dtype)
    total = jax.lax.reduce_window(x, zero, jax.lax.add, (1, *k, 1), (1, *s, 1), "VALID")
    return total / (k[0] * k[1])


@avg_pool2d.backward
def _avg_pool2d_backward(x, out, g, *, window: Size = 2, stride: Size = 2):
    k, s, _ = _geometry("avg_pool2d", x, window, stride)
    share = g / (k[0] * k[1])
    dx = jnp.zeros_like(x)
    for u in range(k[0]):
        for v in range(k[1]):
            dx = dx + _place(share, (u, v), s, x.shape)
    return dx
