"""Losses: fused rules against autodiff, label handling, batch shapes, second derivatives."""

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
@pytest.mark.parametrize(("node", "index"), node_cases("losses"))
def test_hand_rule_matches_autodiff(node, index, mode):
    check_node_case(node, index, mode)


def _logits_labels(shape, seed=0):
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(3 * rng.standard_normal(shape), dtype=jnp.float32)
    return logits, jnp.asarray(rng.integers(0, shape[-1], shape[:-1]), dtype=jnp.int32)


def _ce_oracle(logits, labels):
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, labels[..., None], axis=-1))


def test_softmax_cross_entropy_matches_an_independent_formula_on_sequences():
    logits, labels = _logits_labels((2, 3, 7))
    assert_vjp_matches_reference(fg.nodes.softmax_cross_entropy, _ce_oracle, (logits, labels))


def test_softmax_cross_entropy_saves_probabilities_not_logits():
    logits, labels = _logits_labels((4, 5))
    probs, saved_labels = fg.nodes.softmax_cross_entropy.save(logits, labels, None)
    np.testing.assert_allclose(probs, jax.nn.softmax(logits), rtol=1e-6)
    assert saved_labels is labels


def test_svm_hinge_matches_the_cs231n_formula():
    scores, labels = _logits_labels((5, 4), seed=1)

    def oracle(s, y):
        correct = jnp.take_along_axis(s, y[:, None], axis=1)
        margins = jnp.maximum(0.0, s - correct + 1.0)
        margins = jnp.where(jnp.arange(4) == y[:, None], 0.0, margins)
        return jnp.mean(jnp.sum(margins, axis=1))

    assert fg.nodes.svm_hinge.kinks(scores, labels) > 1e-3  # the oracle is smooth here
    assert_vjp_matches_reference(fg.nodes.svm_hinge, oracle, (scores, labels))
    f = functools.partial(fg.nodes.svm_hinge, margin=0.5)
    ref = functools.partial(fg.nodes.svm_hinge.reference, margin=0.5)
    assert_vjp_matches_reference(f, ref, (scores, labels))


def test_bce_with_logits_matches_optax_style_formula_and_is_stable():
    rng = np.random.default_rng(2)
    z = jnp.asarray(50 * rng.standard_normal(6), dtype=jnp.float32)
    t = jnp.asarray(rng.uniform(size=6), dtype=jnp.float32)

    def oracle(z, t):
        return jnp.mean(-t * jax.nn.log_sigmoid(z) - (1 - t) * jax.nn.log_sigmoid(-z))

    assert_vjp_matches_reference(fg.nodes.binary_cross_entropy_with_logits, oracle, (z, t))


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "svm_hinge"])
def test_labels_are_validated(name):
    node = getattr(fg.nodes, name)
    logits = jnp.zeros((4, 3))
    with pytest.raises(fg.NodeInputError, match="labels"):
        node(logits, jnp.zeros(4))
    with pytest.raises(fg.ShapeMismatchError, match=r"expected \(4,\)"):
        node(logits, jnp.zeros((4, 1), dtype=jnp.int32))


def test_labels_get_no_gradient_and_logits_do():
    logits, labels = _logits_labels((4, 5))
    g_logits, g_labels = jax.grad(fg.nodes.softmax_cross_entropy, argnums=(0, 1), allow_int=True)(
        logits, labels
    )
    assert g_labels.dtype == jax.dtypes.float0
    # Each row's gradient sums to zero (softmax minus one-hot).
    np.testing.assert_allclose(jnp.sum(g_logits, axis=-1), 0.0, atol=1e-7)


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "binary_cross_entropy_with_logits"])
def test_second_derivatives_match_autodiff(name):
    node = getattr(fg.nodes, name)
    with jax.enable_x64(True):
        args = node.examples(jax.random.key(0))[0].args
        assert_grad_of_grad_matches_reference(node, node.reference, args)
