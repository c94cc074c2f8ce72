"""Dropout: the mask regenerated from the key, scaling, keys and rates."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import (
    NODE_CHECK_MODES,
    assert_vjp_matches_reference,
    check_node_case,
    node_cases,
    randn,
)

import funcgraph as fg


@pytest.mark.parametrize("mode", NODE_CHECK_MODES)
@pytest.mark.parametrize(("node", "index"), node_cases("dropout"))
def test_hand_rule_matches_autodiff(node, index, mode):
    check_node_case(node, index, mode)


def test_typed_and_raw_keys_give_the_same_mask():
    x = jnp.ones((50,))
    key = jax.random.key(3)
    typed = fg.nodes.dropout(x, key, rate=0.5)
    raw = fg.nodes.dropout(x, jax.random.key_data(key), rate=0.5)
    np.testing.assert_array_equal(typed, raw)
    f = functools.partial(fg.nodes.dropout, rate=0.5)
    ref = functools.partial(fg.nodes.dropout.reference, rate=0.5)
    assert_vjp_matches_reference(f, ref, (x, key))


def test_inverted_scaling_and_drop_fraction():
    x = jnp.ones((100_000,))
    y = fg.nodes.dropout(x, jax.random.key(0), rate=0.3)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    # 100k Bernoulli draws: the kept fraction is 0.7 within many standard deviations (0.0014).
    assert abs(float(jnp.mean(kept)) - 0.7) < 0.01
    assert abs(float(jnp.mean(y)) - 1.0) < 0.02


def test_gradient_uses_the_forward_mask():
    x = randn(1, (64,))
    key = jax.random.key(2)
    y, vjp = jax.vjp(lambda x: fg.nodes.dropout(x, key, rate=0.25), x)
    (g,) = vjp(jnp.ones_like(y))
    np.testing.assert_array_equal(g != 0, y != 0)
    np.testing.assert_allclose(g[g != 0], 1 / 0.75, rtol=1e-6)


def test_different_keys_different_masks_and_rate_zero_is_identity():
    x = jnp.ones((64,))
    a = fg.nodes.dropout(x, jax.random.key(0), rate=0.5)
    b = fg.nodes.dropout(x, jax.random.key(1), rate=0.5)
    assert bool(jnp.any(a != b))
    np.testing.assert_array_equal(fg.nodes.dropout(x, jax.random.key(0), rate=0.0), x)


def test_under_jit_with_a_key_per_step():
    step = jax.jit(jax.grad(lambda x, k: jnp.sum(fg.nodes.dropout(x, k, rate=0.5) ** 2)))
    x = jnp.ones((32,))
    g1, g2 = step(x, jax.random.key(0)), step(x, jax.random.key(1))
    assert bool(jnp.any(g1 != g2))


@pytest.mark.parametrize("rate", [1.0, -0.1])
def test_bad_rate(rate):
    with pytest.raises(fg.NodeInputError, match="rate"):
        fg.nodes.dropout(jnp.ones(3), jax.random.key(0), rate=rate)


def test_bad_key():
    with pytest.raises(fg.NodeInputError, match="PRNG key"):
        fg.nodes.dropout(jnp.ones(3), jnp.zeros(2), rate=0.5)
