"""Attention: the recomputing (flash) backward against autodiff; blocks; causal masking."""

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
@pytest.mark.parametrize(("node", "index"), node_cases("attention"))
def test_hand_rule_matches_autodiff(node, index, mode):
    check_node_case(node, index, mode)


def _qkv(shape_q, shape_k, shape_v, seed=0):
    return randn(seed, shape_q, shape_k, shape_v)


def _oracle(q, k, v, *, causal=False):
    # Plain softmax attention, autodiff'd: independent of the node's blocks and saved log-sum-exp.
    s = q @ jnp.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        s = jnp.where(jnp.tril(jnp.ones(s.shape[-2:], dtype=bool)), s, -jnp.inf)
    return jax.nn.softmax(s, axis=-1) @ v


@pytest.mark.parametrize(
    ("block_size", "causal"), [(None, False), (1, True), (3, True), (4, False), (16, True)]
)
def test_any_block_size_matches_plain_attention(block_size, causal):
    # 2 batch x 3 heads x 7 queries: blocks of 3 and 4 leave a padded last block.
    args = _qkv((2, 3, 7, 4), (2, 3, 7, 4), (2, 3, 7, 5))
    f = functools.partial(fg.nodes.attention, causal=causal, block_size=block_size)
    assert_vjp_matches_reference(f, functools.partial(_oracle, causal=causal), args)


def test_cross_attention_with_broadcast_keys():
    # Queries per head, keys and values shared by all heads (broadcast leading axis).
    args = _qkv((2, 3, 5, 4), (2, 1, 6, 4), (2, 1, 6, 3))
    f = functools.partial(fg.nodes.attention, block_size=2)
    assert_vjp_matches_reference(f, _oracle, args)


def test_float64_blocked_causal():
    with jax.enable_x64(True):
        args = randn(0, (2, 9, 3), (2, 9, 3), (2, 9, 3), dtype=jnp.float64)
        f = functools.partial(fg.nodes.attention, causal=True, block_size=4)
        assert_vjp_matches_reference(f, functools.partial(_oracle, causal=True), args)


@pytest.mark.parametrize("block_size", [None, 2])
def test_second_derivatives(block_size):
    with jax.enable_x64(True):
        args = randn(0, (1, 4, 3), (1, 4, 3), (1, 4, 2), dtype=jnp.float64)
        f = functools.partial(fg.nodes.attention, causal=True, block_size=block_size)
        ref = functools.partial(_oracle, causal=True)
        assert_grad_of_grad_matches_reference(f, ref, args, argnums=(0, 1, 2))


def test_saves_the_log_sum_exp_not_the_probabilities():
    q, k, v = _qkv((2, 6, 3), (2, 6, 3), (2, 6, 3))
    saved = jax.jit(fg.nodes.attention.save)(q, k, v, None)
    assert [a.shape for a in saved] == [(2, 6, 3)] * 4 + [(2, 6)]
    qk = np.einsum("bqd,bkd->bqk", np.asarray(q, np.float64), np.asarray(k, np.float64))
    lse = np.log(np.sum(np.exp(qk / np.sqrt(3)), axis=-1))
    np.testing.assert_allclose(saved[-1], lse, rtol=1e-5)


def test_shape_errors():
    q, k, v = _qkv((2, 6, 3), (2, 5, 3), (2, 6, 3))
    with pytest.raises(fg.ShapeMismatchError, match="S_k"):
        fg.nodes.attention(q, k, v)
    with pytest.raises(fg.NodeInputError, match="block_size"):
        fg.nodes.attention(q, q, v, block_size=0)
