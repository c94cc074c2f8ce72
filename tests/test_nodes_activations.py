"""Activations: hand-written rules against autodiff, kinks, stability, second derivatives."""

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
@pytest.mark.parametrize(("node", "index"), node_cases("activations"))
def test_hand_rule_matches_autodiff(node, index, mode):
    check_node_case(node, index, mode)


def test_relu_and_leaky_relu_at_the_kink_agree_with_their_references():
    x = jnp.array([-1.0, 0.0, 2.0])
    for node in (fg.nodes.relu, fg.nodes.leaky_relu):
        assert_vjp_matches_reference(node, node.reference, (x,))
        assert node.kinks(x) == 0.0
    np.testing.assert_allclose(jax.grad(lambda x: jnp.sum(fg.nodes.relu(x)))(x), [0, 0, 1])


def test_gelu_matches_jax_nn():
    x = jnp.linspace(-4.0, 4.0, 9)
    for approximate in (True, False):
        f = functools.partial(fg.nodes.gelu, approximate=approximate)
        ref = functools.partial(jax.nn.gelu, approximate=approximate)
        assert_vjp_matches_reference(f, ref, (x,))


@pytest.mark.parametrize("name", ["softplus", "softmax", "log_softmax"])
def test_large_inputs_stay_finite(name):
    node = getattr(fg.nodes, name)
    x = jnp.array([[-200.0, 0.0, 200.0], [1e4, 1e4, -1e4]])
    y, vjp = jax.vjp(node, x)
    (g,) = vjp(jnp.ones_like(y))
    assert bool(jnp.all(jnp.isfinite(y))) and bool(jnp.all(jnp.isfinite(g)))
    assert_vjp_matches_reference(node, node.reference, (x,), atol=1e-5)


@pytest.mark.parametrize("name", ["tanh", "softmax", "log_softmax", "gelu", "softplus"])
def test_second_derivatives_match_autodiff(name):
    node = getattr(fg.nodes, name)
    with jax.enable_x64(True):
        x = randn(0, (3, 4), dtype=jnp.float64)
        assert_grad_of_grad_matches_reference(node, node.reference, (x,))


def test_output_saving_nodes():
    for name in ("relu", "tanh", "softmax", "log_softmax"):
        assert getattr(fg.nodes, name).save == "output"
