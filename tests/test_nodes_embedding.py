"""Embedding: gather forward, scatter-add backward."""

from __future__ import annotations

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
@pytest.mark.parametrize(("node", "index"), node_cases("embedding"))
def test_hand_rule_matches_autodiff(node, index, mode):
    check_node_case(node, index, mode)


def test_repeated_ids_accumulate():
    table = jnp.arange(8.0).reshape(4, 2)
    ids = jnp.array([[1, 1], [3, 1]])
    g = jax.grad(lambda t: jnp.sum(fg.nodes.embedding(t, ids)))(table)
    np.testing.assert_array_equal(g, [[0, 0], [3, 3], [0, 0], [1, 1]])


def test_matches_indexing_oracle_for_scalar_and_nd_ids():
    table = randn(0, (6, 3, 2))
    for ids in (jnp.array(4), jnp.array([[0, 5, 5], [2, 2, 1]])):
        assert_vjp_matches_reference(fg.nodes.embedding, lambda t, i: t[i], (table, ids))


def test_float_ids_are_rejected():
    with pytest.raises(fg.NodeInputError, match="ids"):
        fg.nodes.embedding(jnp.zeros((3, 2)), jnp.zeros(2))
