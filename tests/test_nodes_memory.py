"""Memory: nodes that save less than autodiff must compile to no more temporary memory.

Each test compiles `jax.grad` of a small loss twice, once through the node's hand-written rule
and once as plain `jax.numpy` differentiated by JAX, and compares XLA's temporary buffer sizes
(`memory_analysis().temp_size_in_bytes`, deterministic for a given program). Only shapes are
needed, so nothing runs.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import pytest

import funcgraph as fg


def _temp_bytes(f, *args) -> int:
    analysis = jax.jit(f).lower(*args).compile().memory_analysis()
    if analysis is None:
        pytest.skip("this backend reports no memory analysis")
    return int(analysis.temp_size_in_bytes)


def _ratio(ours, plain, *args) -> float:
    ours_bytes, plain_bytes = _temp_bytes(ours, *args), _temp_bytes(plain, *args)
    print(f"temp bytes: funcgraph {ours_bytes}, autodiff {plain_bytes}")
    return ours_bytes / max(plain_bytes, 1)


def _f32(*shape):
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def test_layer_norm_saves_less_than_autodiff():
    x, gamma, beta, w = _f32(256, 1024), _f32(1024), _f32(1024), _f32(256, 1024)

    def plain(x, gamma, beta, w):
        mu = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean((x - mu) ** 2, axis=-1, keepdims=True)
        return jnp.sum(((x - mu) / jnp.sqrt(var + 1e-5) * gamma + beta) * w)

    def ours(x, gamma, beta, w):
        return jnp.sum(fg.nodes.layer_norm(x, gamma, beta) * w)

    grads = (0, 1, 2)
    ratio = _ratio(jax.grad(ours, grads), jax.grad(plain, grads), x, gamma, beta, w)
    assert ratio <= 1.0


def test_softmax_cross_entropy_saves_less_than_autodiff():
    logits = _f32(256, 1000)
    labels = jax.ShapeDtypeStruct((256,), jnp.int32)

    def plain(logits, labels):
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))

    ratio = _ratio(jax.grad(fg.nodes.softmax_cross_entropy), jax.grad(plain), logits, labels)
    assert ratio <= 1.0


@pytest.mark.parametrize("causal", [False, True])
def test_attention_saves_less_than_autodiff(causal):
    # batch 2, 4 heads, 256 positions, head size 64.
    q, k, v, w = (_f32(2, 4, 256, 64) for _ in range(4))

    def plain(q, k, v, w):
        s = q @ jnp.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
        if causal:
            s = jnp.where(jnp.tril(jnp.ones(s.shape[-2:], dtype=bool)), s, -jnp.inf)
        return jnp.sum((jax.nn.softmax(s, axis=-1) @ v) * w)

    def ours(q, k, v, w):
        return jnp.sum(fg.nodes.attention(q, k, v, causal=causal) * w)

    grads = (0, 1, 2)
    ratio = _ratio(jax.grad(ours, grads), jax.grad(plain, grads), q, k, v, w)
    assert ratio <= 1.0
