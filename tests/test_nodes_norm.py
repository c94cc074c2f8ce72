"""Normalization: batch norm (train/eval) and layer norm against autodiff; what they save."""

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
)

import funcgraph as fg


@pytest.mark.parametrize("mode", NODE_CHECK_MODES)
@pytest.mark.parametrize(("node", "index"), node_cases("norm"))
def test_hand_rule_matches_autodiff(node, index, mode):
    check_node_case(node, index, mode)


def _params(shape, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[-1]
    return tuple(
        jnp.asarray(a, dtype=jnp.float32)
        for a in (rng.normal(1, 2, shape), rng.normal(1, 0.1, c), rng.normal(0, 1, c))
    )


def _layer_norm_oracle(x, gamma, beta):
    mu = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.var(x, axis=-1, keepdims=True)
    return (x - mu) / jnp.sqrt(var + 1e-5) * gamma + beta


def _batch_norm_oracle(x, gamma, beta):
    axes = tuple(range(x.ndim - 1))
    mu, var = jnp.mean(x, axis=axes), jnp.var(x, axis=axes)
    return (x - mu) / jnp.sqrt(var + 1e-5) * gamma + beta, mu, var


def test_layer_norm_on_sequences_matches_an_independent_formula():
    args = _params((2, 3, 8))
    assert_vjp_matches_reference(fg.nodes.layer_norm, _layer_norm_oracle, args)


def test_batch_norm_on_images_matches_an_independent_formula():
    # The random cotangent reaches all three outputs, so the statistics' gradients are tested.
    args = _params((2, 3, 3, 4))
    assert_vjp_matches_reference(fg.nodes.batch_norm, _batch_norm_oracle, args)


def test_batch_norm_eval_with_batch_statistics_equals_train_mode_output():
    x, gamma, beta = _params((6, 4))
    y, mean, var = fg.nodes.batch_norm(x, gamma, beta)
    np.testing.assert_allclose(
        fg.nodes.batch_norm_eval(x, gamma, beta, mean, var), y, rtol=1e-5, atol=1e-6
    )


def test_layer_norm_saves_only_xhat_rstd_and_gamma():
    x, gamma, beta = _params((3, 5))
    xhat, rstd, saved_gamma = fg.nodes.layer_norm.save(x, gamma, beta, None)
    assert xhat.shape == x.shape and rstd.shape == (3, 1) and saved_gamma is gamma
    np.testing.assert_allclose(xhat * gamma + beta, fg.nodes.layer_norm(x, gamma, beta), atol=1e-6)


def test_parameter_shapes_are_checked():
    x, gamma, beta = _params((3, 5))
    with pytest.raises(fg.ShapeMismatchError, match=r"\(5,\)"):
        fg.nodes.layer_norm(x, gamma[:4], beta)


@pytest.mark.parametrize("name", ["layer_norm", "batch_norm_eval"])
def test_second_derivatives_match_autodiff(name):
    node = getattr(fg.nodes, name)
    with jax.enable_x64(True):
        args = node.examples(jax.random.key(0))[0].args
        f = functools.partial(_squash, node)
        ref = functools.partial(_squash, node.reference)
        assert_grad_of_grad_matches_reference(f, ref, args)


def _squash(node, *args):
    return jnp.tanh(node(*args))
