"""Gates: hand-written rules against autodiff, broadcasting, ties, second derivatives, lumping."""

from __future__ import annotations

import runpy
from pathlib import Path

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
from funcgraph.nodes import gates


@pytest.mark.parametrize("mode", NODE_CHECK_MODES)
@pytest.mark.parametrize(("node", "index"), node_cases("gates"))
def test_hand_rule_matches_autodiff(node, index, mode):
    check_node_case(node, index, mode)


@pytest.mark.parametrize(
    ("shape_x", "shape_y"),
    [((2, 3, 4), (3, 1)), ((1, 4), (3, 1)), ((), (2, 3)), ((2, 1, 3), (2, 5, 1))],
)
@pytest.mark.parametrize("name", ["add", "mul", "maximum", "div"])
def test_binary_gates_sum_gradients_over_broadcast_axes(name, shape_x, shape_y):
    node = getattr(fg.nodes, name)
    x, y = randn(3, shape_x, shape_y)
    y = jnp.asarray(0.5 + np.abs(np.asarray(y)))  # nonzero for div
    assert_vjp_matches_reference(node, node.reference, (x, y))


def test_python_scalar_input_gets_a_scalar_gradient():
    x = jnp.arange(3.0)
    gx, gc = jax.grad(lambda x, c: jnp.sum(fg.nodes.mul(x, c)), argnums=(0, 1))(x, 2.0)
    np.testing.assert_allclose(gx, jnp.full(3, 2.0))
    assert gc.shape == () and gc.dtype == x.dtype
    np.testing.assert_allclose(gc, jnp.sum(x))


@pytest.mark.parametrize(("shape", "target"), [((4,), (3, 4)), ((3, 1), (3, 4)), ((), (2, 2))])
def test_unbroadcast_is_the_adjoint_of_broadcasting(shape, target):
    a = jnp.ones(shape)
    g = randn(1, target)
    (want,) = jax.vjp(lambda a: jnp.broadcast_to(a, target), a)[1](g)
    np.testing.assert_allclose(fg.nodes.unbroadcast(g, shape), want, rtol=1e-6)


def test_maximum_splits_the_gradient_equally_on_ties():
    x = jnp.array([1.0, 2.0, 3.0])
    y = jnp.array([1.0, 0.0, 3.0])
    gx, gy = jax.grad(lambda x, y: jnp.sum(fg.nodes.maximum(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, [0.5, 1.0, 0.5])
    np.testing.assert_allclose(gy, [0.5, 0.0, 0.5])
    # The same convention as autodiff of jnp.maximum.
    assert_vjp_matches_reference(fg.nodes.maximum, fg.nodes.maximum.reference, (x, y))
    assert fg.nodes.maximum.kinks(x, y) == 0.0


@pytest.mark.parametrize("name", ["sigmoid", "div", "reciprocal", "exp", "log", "square"])
def test_second_derivatives_match_autodiff(name):
    node = getattr(fg.nodes, name)
    with jax.enable_x64(True):
        args = node.examples(jax.random.key(0))[0].args
        assert_grad_of_grad_matches_reference(node, node.reference, args)


def test_power_second_derivative():
    x = jnp.asarray(np.linspace(0.5, 2.0, 5, dtype=np.float32))
    assert_grad_of_grad_matches_reference(
        lambda x: fg.nodes.power(x, p=2.5), lambda x: gates.power.reference(x, p=2.5), (x,)
    )


def test_sigmoid_saves_only_its_output():
    assert fg.nodes.sigmoid.save == "output"
    assert fg.nodes.exp.save == "output"


def _sigmoid_from_gates(x):
    # The lecture's sigmoid circuit: 1 / (1 + exp(-x)), one gate per operation.
    return fg.nodes.reciprocal(fg.nodes.add(1.0, fg.nodes.exp(fg.nodes.scale(x, c=-1.0))))


def test_lumped_gate_sigmoid_equals_the_fused_node():
    lumped = fg.lump(_sigmoid_from_gates, name="sigmoid_lumped")
    graph = fg.trace(_sigmoid_from_gates, jnp.zeros(3))
    assert [a.name for a in graph.applications] == ["scale", "exp", "add", "reciprocal"]
    # float64, so that the two roundings of the same math agree to tight tolerances.
    with jax.enable_x64(True):
        x = randn(0, (7,), dtype=jnp.float64) * 3
        np.testing.assert_allclose(lumped(x), fg.nodes.sigmoid(x), rtol=1e-12)
        g_lumped = jax.grad(lambda x: jnp.sum(lumped(x) ** 2))(x)
        g_fused = jax.grad(lambda x: jnp.sum(fg.nodes.sigmoid(x) ** 2))(x)
        np.testing.assert_allclose(g_lumped, g_fused, rtol=1e-10)
        # The graph's own backward pass through the lumped node agrees too.
        _, g_graph = fg.value_and_grad(lambda x: jnp.sum(lumped(x) ** 2))(x)
        np.testing.assert_allclose(g_graph, g_fused, rtol=1e-10)


def test_lumped_sigmoid_example_runs(capsys):
    path = Path(__file__).resolve().parent.parent / "examples" / "lumped_sigmoid.py"
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert "[0] sigmoid_lumped (hand)" in out
    assert "same gradients: True" in out
