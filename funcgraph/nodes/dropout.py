r"""Inverted dropout with an explicit PRNG key input.

The key is a positional input (so a jitted training step can take a fresh key per step); it is
integer data and gets no gradient. The backward saves only the key and regenerates the mask from
it, so no mask of the input's size is kept between the passes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from funcgraph.errors import NodeInputError
from funcgraph.node import Example, node
from funcgraph.nodes._util import normal

__all__ = ["dropout"]


def _typed_key(key: jax.Array) -> jax.Array:
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if key.dtype != jnp.uint32:
        raise NodeInputError(
            f"node 'dropout': input 'key' has dtype {key.dtype}; expected a PRNG key "
            "(jax.random.key(...) or the uint32 array of jax.random.PRNGKey(...))"
        )
    return jax.random.wrap_key_data(key)


def _keep_mask(key: jax.Array, shape: tuple[int, ...], rate: float) -> jax.Array:
    return jax.random.bernoulli(_typed_key(key), 1.0 - rate, shape)


def _check_rate(rate: float) -> None:
    if not 0.0 <= rate < 1.0:
        raise NodeInputError(f"node 'dropout': rate={rate!r}, expected 0 <= rate < 1")


def _save_key(x, key, out, *, rate: float):
    return key


def _dropout_example(key: jax.Array) -> Example:
    k1, k2 = jax.random.split(key)
    return Example((normal(k1, (4, 5)), jax.random.key_data(k2)), {"rate": 0.3})


@node(save=_save_key, example=_dropout_example)
def dropout(x, key, *, rate: float):
    r"""Inverted dropout: zero each entry with probability `rate` (static) and scale the kept
    ones by $1/(1 - p)$, so the expected output equals the input and evaluation needs no
    rescaling. The same key gives the same mask.

    **Arguments:**

    - `x`: any shape.
    - `key`: a `jax.random.key(...)` or the uint32 array of `jax.random.PRNGKey(...)`.
    - `rate`: the drop probability $p$, `0 <= rate < 1` (static).

    **Returns:** like `x`.

    **Forward:** $m_i \sim \operatorname{Bernoulli}(1 - p)$, $y_i = \frac{m_i}{1 - p}\, x_i$

    **Backward:** $\frac{\partial L}{\partial x_i} = \frac{m_i}{1 - p}\, g_i$ (the mask is
    regenerated from the key); the key gets no gradient.
    """
    _check_rate(rate)
    if rate == 0.0:
        return x
    keep = _keep_mask(key, x.shape, rate)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


@dropout.backward
def _dropout_backward(key, g, *, rate: float):
    if rate == 0.0:
        return g, None
    keep = _keep_mask(key, g.shape, rate)
    return jnp.where(keep, g / (1.0 - rate), jnp.zeros_like(g)), None
