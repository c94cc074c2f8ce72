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


# One shape and jitted calls throughout: eager random kernels compile once per shape.
N = 4096


@jax.jit
def _drop(x, key):
    return fg.nodes.dropout(x, key, rate=0.3)


def test_typed_and_raw_keys_give_the_same_mask():
    x = jnp.ones((N,))
    key = jax.random.key(3)
    np.testing.assert_array_equal(_drop(x, key), _drop(x, jax.random.key_data(key)))
    f = functools.partial(fg.nodes.dropout, rate=0.3)
    ref = functools.partial(fg.nodes.dropout.reference, rate=0.3)
    assert_vjp_matches_reference(f, ref, (x, key))


def test_inverted_scaling_and_drop_fraction():
    y = np.asarray(_drop(jnp.ones((N,)), jax.random.key(0)))
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    # 4096 Bernoulli(0.7) draws: the kept fraction's standard deviation is 0.007.
    assert abs(kept.mean() - 0.7) < 0.05
    assert abs(y.mean() - 1.0) < 0.07


def test_gradient_uses_the_forward_mask():
    x = randn(1, (N,))
    key = jax.random.key(2)
    y = np.asarray(_drop(x, key))
    g = np.asarray(jax.jit(jax.grad(lambda x: jnp.sum(_drop(x, key))))(x))
    np.testing.assert_array_equal(g != 0, y != 0)
    np.testing.assert_allclose(g[g != 0], 1 / 0.7, rtol=1e-6)


def test_different_keys_different_masks_and_rate_zero_is_identity():
    x = jnp.ones((N,))
    assert bool(jnp.any(_drop(x, jax.random.key(0)) != _drop(x, jax.random.key(1))))
    np.testing.assert_array_equal(fg.nodes.dropout(x, jax.random.key(0), rate=0.0), x)


def test_under_jit_with_a_key_per_step():
    step = jax.jit(jax.grad(lambda x, k: jnp.sum(_drop(x, k) ** 2)))
    x = jnp.ones((N,))
    assert bool(jnp.any(step(x, jax.random.key(0)) != step(x, jax.random.key(1))))


@pytest.mark.parametrize("rate", [1.0, -0.1])
def test_bad_rate(rate):
    with pytest.raises(fg.NodeInputError, match="rate"):
        fg.nodes.dropout(jnp.ones(3), jax.random.key(0), rate=rate)


def test_bad_key():
    with pytest.raises(fg.NodeInputError, match="PRNG key"):
        fg.nodes.dropout(jnp.ones(3), jnp.zeros(2), rate=0.5)
