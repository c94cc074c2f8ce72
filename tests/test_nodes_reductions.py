"""Reductions: sum, mean, max (ties) and log-sum-exp against autodiff."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import (
    NODE_CHECK_MODES,
    assert_grad_of_grad_matches_reference,
    assert_vjp_matches_reference,
    check_node_case,
    node_cases,
    randn,
)

import funcgraph as fg


@pytest.mark.parametrize("mode", NODE_CHECK_MODES)
@pytest.mark.parametrize(("node", "index"), node_cases("reductions"))
def test_hand_rule_matches_autodiff(node, index, mode):
    check_node_case(node, index, mode)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "logsumexp"])
@pytest.mark.parametrize(("axis", "keepdims"), [(None, True), ((0, 2), False), ((-3, -1), True)])
def test_axes_and_keepdims(name, axis, keepdims):
    node = getattr(fg.nodes, name)
    x = randn(0, (3, 4, 5))
    f = functools.partial(node, axis=axis, keepdims=keepdims)
    oracle = jax.nn.logsumexp if name == "logsumexp" else getattr(jnp, name)
    ref = functools.partial(oracle, axis=axis, keepdims=keepdims)
    assert_vjp_matches_reference(f, ref, (x,))


def test_max_splits_the_gradient_equally_between_ties():
    x = jnp.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    g = jax.grad(lambda x: jnp.sum(fg.nodes.max(x, axis=1)))(x)
    np.testing.assert_allclose(g, [[0, 0.5, 0.5, 0], [0.25, 0.25, 0.25, 0.25]])
    # The same convention as autodiff of jnp.max.
    np.testing.assert_allclose(g, jax.grad(lambda x: jnp.sum(jnp.max(x, axis=1)))(x))
    assert fg.nodes.max.kinks(x, axis=1) == 0.0


def test_max_kinks_is_half_the_top_two_gap():
    x = jnp.array([[0.0, 1.0, 0.4], [5.0, 2.0, 4.0]])
    assert fg.nodes.max.kinks(x, axis=1) == pytest.approx(0.3)
    assert fg.nodes.max.kinks(x) == pytest.approx(0.5)


def test_logsumexp_is_stable_for_large_inputs():
    x = jnp.array([1000.0, 1000.0, -1000.0])
    assert float(fg.nodes.logsumexp(x)) == pytest.approx(1000.0 + np.log(2.0))
    g = jax.grad(lambda x: fg.nodes.logsumexp(x))(x)
    # exp(x - y) with the rounded output y = 1000.69: float32 spacing there is 6e-5.
    np.testing.assert_allclose(g, jax.nn.softmax(x), rtol=1e-4, atol=1e-30)


@pytest.mark.parametrize("name", ["logsumexp", "mean"])
def test_second_derivatives(name):
    node = getattr(fg.nodes, name)
    with jax.enable_x64(True):
        x = randn(1, (3, 4), dtype=jnp.float64)
        f = functools.partial(node, axis=1)
        ref = functools.partial(node.reference, axis=1)
        # tanh makes the outer function nonlinear, so mean's zero Hessian is not all we test.
        assert_grad_of_grad_matches_reference(
            lambda x: jnp.tanh(f(x)), lambda x: jnp.tanh(ref(x)), (x,)
        )
