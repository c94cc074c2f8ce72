r"""The same networks as `funcgraph.nn`, written as a user would without funcgraph.

Plain `jnp` (and `jax.nn` / `jax.lax` where a user would naturally reach for them) differentiated
by `jax.grad`. Each `apply` takes exactly the parameter pytree that the matching `funcgraph.nn`
model's `init` returns, so both sides start from the same numbers, and the benchmark checks
that both give the same loss and gradients before timing anything.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "cross_entropy",
    "layer_norm",
    "lenet_apply",
    "mlp_apply",
    "mse",
    "transformer_block_apply",
]

Params = Any


def dense(p: Params, x: jax.Array) -> jax.Array:
    r"""$y = x W + b$."""
    return x @ p["w"] + p["b"]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    r"""Mean softmax cross-entropy with integer labels, via `jax.nn.log_softmax`."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[..., None], axis=-1))


def mse(pred: jax.Array, target: jax.Array) -> jax.Array:
    r"""$\frac1N \sum (p - t)^2$."""
    return jnp.mean((pred - target) ** 2)


def mlp_apply(params: Params, x: jax.Array) -> jax.Array:
    """`funcgraph.nn.mlp(sizes)` with ReLU: params are `(dense, (), dense, (), ..., dense)`."""
    denses = [p for p in params if p != ()]
    h = x
    for p in denses[:-1]:
        h = jax.nn.relu(dense(p, h))
    return dense(denses[-1], h)


def _conv(p: Params, x: jax.Array) -> jax.Array:
    y = jax.lax.conv_general_dilated(
        x, p["w"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y + p["b"]


def _max_pool(x: jax.Array) -> jax.Array:
    # A concrete NumPy init lets JAX recognize the max monoid (and so differentiate it).
    init = np.array(-np.inf, dtype=x.dtype)
    return jax.lax.reduce_window(x, init, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def lenet_apply(params: Params, x: jax.Array) -> jax.Array:
    """`funcgraph.nn.lenet` (conv, relu, max-pool twice; flatten; dense-relu twice; dense).

    Params are the 12-tuple of `nn.sequential`: `(conv, (), (), conv, (), (), (), dense, (),
    dense, (), dense)`.
    """
    c1, _, _, c2, _, _, _, d1, _, d2, _, d3 = params
    h = _max_pool(jax.nn.relu(_conv(c1, x)))
    h = _max_pool(jax.nn.relu(_conv(c2, h)))
    h = h.reshape(h.shape[0], -1)
    h = jax.nn.relu(dense(d1, h))
    h = jax.nn.relu(dense(d2, h))
    return dense(d3, h)


def layer_norm(p: Params, x: jax.Array, eps: float = 1e-5) -> jax.Array:
    r"""$\gamma \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta$ over the last axis."""
    mu = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean((x - mu) ** 2, axis=-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + eps) * p["gamma"] + p["beta"]


def _attention(p: Params, x: jax.Array, heads: int, causal: bool) -> jax.Array:
    batch, seq, dim = x.shape
    hd = dim // heads
    q, k, v = jnp.split(dense(p["qkv"], x), 3, axis=-1)
    q, k, v = (t.reshape(batch, seq, heads, hd).transpose(0, 2, 1, 3) for t in (q, k, v))
    s = q @ k.swapaxes(-1, -2) / math.sqrt(hd)
    if causal:
        mask = jnp.tril(jnp.ones((seq, seq), dtype=bool))
        s = jnp.where(mask, s, jnp.finfo(s.dtype).min)
    o = jax.nn.softmax(s, axis=-1) @ v
    return dense(p["out"], o.transpose(0, 2, 1, 3).reshape(batch, seq, dim))


def transformer_block_apply(
    params: Params, x: jax.Array, *, heads: int, causal: bool = False
) -> jax.Array:
    r"""`funcgraph.nn.transformer_block` (pre-norm, tanh-approximate GELU):
    $h = x + \operatorname{MHA}(\operatorname{LN}_1(x))$,
    $y = h + W_2 \operatorname{gelu}(W_1 \operatorname{LN}_2(h))$.

    Params are `((ln, mha, ()), (ln, dense, (), dense, ()))`.
    """
    (ln1, mha, _), (ln2, d1, _, d2, _) = params
    h = x + _attention(mha, layer_norm(ln1, x), heads, causal)
    return h + dense(d2, jax.nn.gelu(dense(d1, layer_norm(ln2, h)), approximate=True))
