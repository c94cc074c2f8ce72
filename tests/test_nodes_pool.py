"""Pooling: max (routing, ties) and average against autodiff."""

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
@pytest.mark.parametrize(("node", "index"), node_cases("pool"))
def test_hand_rule_matches_autodiff(node, index, mode):
    check_node_case(node, index, mode)


@pytest.mark.parametrize(
    ("shape", "window", "stride"),
    [((1, 5, 7, 2), 2, 2), ((2, 6, 6, 1), 3, 1), ((1, 7, 5, 2), (3, 2), (2, 1))],
)
@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_windows_and_strides(name, shape, window, stride):
    node = getattr(fg.nodes, name)
    x = randn(0, shape)
    f = functools.partial(node, window=window, stride=stride)
    ref = functools.partial(node.reference, window=window, stride=stride)
    assert_vjp_matches_reference(f, ref, (x,))


def test_max_pool_gives_a_tied_window_gradient_to_its_first_maximum():
    x = jnp.array([[1.0, 3.0], [3.0, 0.0]]).reshape(1, 2, 2, 1)
    g = jax.grad(lambda x: jnp.sum(fg.nodes.max_pool2d(x)))(x)
    np.testing.assert_array_equal(g.reshape(2, 2), [[0.0, 1.0], [0.0, 0.0]])
    assert fg.nodes.max_pool2d.kinks(x) == 0.0


def test_avg_pool_is_the_window_mean():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    y = fg.nodes.avg_pool2d(x)
    np.testing.assert_allclose(y.reshape(2, 2), [[2.5, 4.5], [10.5, 12.5]])


def test_window_larger_than_input_is_an_error():
    with pytest.raises(fg.ShapeMismatchError, match="smaller than the window"):
        fg.nodes.max_pool2d(jnp.zeros((1, 2, 2, 1)), window=3)
