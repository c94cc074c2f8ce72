r"""Embedding lookup: rows of a table gathered by integer ids."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from funcgraph.errors import NodeInputError
from funcgraph.node import node
from funcgraph.nodes._util import normal, randint

__all__ = ["embedding"]


def _embedding_example(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    k1, k2 = jax.random.split(key)
    # 2 x 4 ids from a 5-row vocabulary: some id repeats, exercising the scatter-add.
    return normal(k1, (5, 3)), randint(k2, (2, 4), 0, 5)


@node(save="inputs", example=_embedding_example)
def embedding(table, ids):
    r"""Look up rows of a table at integer ids; `ids` gets no gradient.

    **Arguments:**

    - `table`: `(V, D)` (or `(V, ...)`).
    - `ids`: integers in `[0, V)`, any shape `S`.

    **Returns:** `S + (D,)`.

    **Forward:** $y_{s} = T_{\text{ids}_s}$

    **Backward:** $\frac{\partial L}{\partial T_v} = \sum_{s:\ \text{ids}_s = v} g_s$
    (a scatter-add: a row looked up twice collects both gradients).
    """
    if not jnp.issubdtype(jnp.result_type(ids), jnp.integer):
        raise NodeInputError(
            f"node 'embedding': input 'ids' has dtype {jnp.result_type(ids)}, expected integers"
        )
    return jnp.take(table, ids, axis=0)


@embedding.backward
def _embedding_backward(table, ids, out, g):
    rows = g.reshape((ids.size, *table.shape[1:]))
    return jnp.zeros_like(table).at[ids.reshape(-1)].add(rows), None
