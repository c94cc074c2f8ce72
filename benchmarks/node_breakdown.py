r"""Node by node: the transformer block's and LeNet's nodes alone, against plain autodiff.

When a network's ratio misses its target, this says which node's backward is responsible. Each
node is differentiated alone at the shapes it has inside the network, through
$L = \sum_i y_i r_i$ with a fixed random $r$ (so the upstream gradient is not trivial), by
`jax.grad` once with the node (its hand-written rule) and once with the plain `jnp` / `jax.nn`
code of `benchmarks.baselines` (autodiff). Reported: time ratio and compiled temporary memory
ratio. Not part of the default run; `python -m benchmarks.run --sections nodes`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import baselines
from benchmarks.timing import interleaved, paired_ratio, ratio, temp_bytes
from funcgraph import nodes

__all__ = ["cases", "run"]

Case = tuple[str, Callable[..., jax.Array], Callable[..., jax.Array], tuple[jax.Array, ...]]


def _plain_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    s = q @ jnp.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    return jax.nn.softmax(s, axis=-1) @ v


def _plain_pool(x: jax.Array) -> jax.Array:
    init = np.array(-np.inf, dtype=x.dtype)
    return jax.lax.reduce_window(x, init, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def _plain_conv(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    return baselines._conv({"w": w, "b": b}, x)


def cases(*, quick: bool) -> list[Case]:
    """(name, node call, plain call, inputs) at the shapes the benchmark networks use."""
    b, s, d, h = (2, 16, 32, 2) if quick else (8, 256, 256, 4)
    n = 16 if quick else 256
    keys = iter(jax.random.split(jax.random.key(0), 16))

    def normal(*shape: int) -> jax.Array:
        return jax.random.normal(next(keys), shape, jnp.float32)

    ones, zeros = jnp.ones((d,), jnp.float32), jnp.zeros((d,), jnp.float32)
    heads = (b, h, s, d // h)
    return [
        (
            f"attention {heads}",
            lambda q, k, v: nodes.attention(q, k, v),
            _plain_attention,
            (normal(*heads), normal(*heads), normal(*heads)),
        ),
        (
            f"layer_norm {(b, s, d)}",
            nodes.layer_norm,
            lambda x, g, be: baselines.layer_norm({"gamma": g, "beta": be}, x),
            (normal(b, s, d), ones, zeros),
        ),
        (
            f"gelu {(b, s, 4 * d)}",
            lambda x: nodes.gelu(x),
            lambda x: jax.nn.gelu(x, approximate=True),
            (normal(b, s, 4 * d),),
        ),
        (
            f"dense {(b, s, 4 * d)}→{d}",
            nodes.dense,
            lambda x, w, bias: x @ w + bias,
            (normal(b, s, 4 * d), normal(4 * d, d), normal(d)),
        ),
        (
            f"conv2d 5×5 {(n, 8, 8, 1)}→6",
            lambda x, w, bias: nodes.conv2d(x, w, bias),
            _plain_conv,
            (normal(n, 8, 8, 1), normal(5, 5, 1, 6), normal(6)),
        ),
        (
            f"max_pool2d {(n, 8, 8, 6)}",
            lambda x: nodes.max_pool2d(x),
            _plain_pool,
            (normal(n, 8, 8, 6),),
        ),
    ]


def run(*, quick: bool, repeats: int, min_repeat_s: float = 0.02) -> list[dict[str, Any]]:
    """Time and measure the gradient of each node alone, node against plain autodiff."""
    rows = []
    for name, ours, theirs, args in cases(quick=quick):
        r = jax.random.normal(jax.random.key(1), jnp.shape(ours(*args)), jnp.float32)
        argnums = tuple(range(len(args)))

        def loss(f: Callable[..., jax.Array], r: jax.Array = r) -> Callable[..., jax.Array]:
            return lambda *a: jnp.sum(f(*a) * r)

        g_ours = jax.jit(jax.grad(loss(ours), argnums)).lower(*args).compile()
        g_theirs = jax.jit(jax.grad(loss(theirs), argnums)).lower(*args).compile()
        t = interleaved(
            {
                "funcgraph": lambda f=g_ours, a=args: f(*a),
                "baseline": lambda f=g_theirs, a=args: f(*a),
            },
            repeats=repeats,
            min_repeat_s=min_repeat_s,
        )
        paired = paired_ratio(t["funcgraph"], t["baseline"])
        mem_ours, mem_theirs = temp_bytes(g_ours), temp_bytes(g_theirs)
        rows.append(
            {
                "node": name,
                "funcgraph_s": t["funcgraph"].median,
                "baseline_s": t["baseline"].median,
                "time_ratio": paired.median,
                "time_ratio_quartiles": [paired.low, paired.high],
                "cpu_ratio": paired_ratio(t["funcgraph"], t["baseline"], cpu=True).median,
                "cpu_ratio_quartiles": list(
                    paired_ratio(t["funcgraph"], t["baseline"], cpu=True)[1:]
                ),
                "funcgraph_temp_bytes": mem_ours,
                "baseline_temp_bytes": mem_theirs,
                "memory_ratio": ratio(mem_ours, mem_theirs),
            }
        )
    return rows
