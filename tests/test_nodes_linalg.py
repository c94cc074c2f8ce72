"""Vector/matrix nodes: products, dense, and shape plumbing against autodiff."""

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
@pytest.mark.parametrize(("node", "index"), node_cases("linalg"))
def test_hand_rule_matches_autodiff(node, index, mode):
    check_node_case(node, index, mode)


def _normal(seed, *shapes, dtype="float32"):
    out = randn(seed, *shapes, dtype=dtype)
    return out if len(shapes) > 1 else (out,)


@pytest.mark.parametrize(
    ("shape_a", "shape_b"),
    [((4,), (4,)), ((4,), (4, 3)), ((2, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2)), ((3, 4), (2, 4, 5))],
)
def test_matmul_vectors_and_broadcast_batches(shape_a, shape_b):
    args = _normal(0, shape_a, shape_b)
    assert_vjp_matches_reference(fg.nodes.matmul, fg.nodes.matmul.reference, args)


def test_dense_on_sequences_and_eagerly():
    args = _normal(1, (2, 3, 4), (4, 5), (5,))
    assert_vjp_matches_reference(fg.nodes.dense, fg.nodes.dense.reference, args, jit=False)


def test_dot_broadcasts_a_matrix_against_a_vector():
    args = _normal(2, (3, 4), (4,))
    assert fg.nodes.dot(*args).shape == (3,)
    assert_vjp_matches_reference(fg.nodes.dot, fg.nodes.dot.reference, args)


@pytest.mark.parametrize("axes", [None, (2, 0, 1), (-1, 0, -2)])
def test_transpose_inverse_permutation(axes):
    (x,) = _normal(3, (2, 3, 4))
    f = functools.partial(fg.nodes.transpose, axes=axes)
    assert_vjp_matches_reference(f, functools.partial(jnp.transpose, axes=axes), (x,))


def test_concatenate_returns_gradients_in_the_structure_of_its_input():
    x, y, z = _normal(4, (2, 1), (2, 3), (2, 2))
    for xs in ((x, y, z), [x, y, z]):
        g = jax.grad(lambda xs: jnp.sum(fg.nodes.concatenate(xs, axis=1) ** 2))(xs)
        assert type(g) is type(xs)
        for gi, xi in zip(g, xs, strict=True):
            np.testing.assert_allclose(gi, 2 * xi, rtol=1e-6)


def test_split_with_unused_parts():
    (x,) = _normal(5, (6, 2))
    # Only the middle part is used; the others get (instantiated) zero gradients.
    g = jax.grad(lambda x: jnp.sum(fg.nodes.split(x, sections=3)[1] ** 2))(x)
    want = jax.grad(lambda x: jnp.sum(jnp.split(x, 3)[1] ** 2))(x)
    np.testing.assert_allclose(g, want, rtol=1e-6)


@pytest.mark.parametrize(("axis", "ids_shape"), [(0, (2, 3)), (1, (4,)), (-1, (2, 2))])
def test_take_scatter_adds_repeated_indices(axis, ids_shape):
    (x,) = _normal(6, (3, 4, 2))
    ids = jnp.asarray(np.random.default_rng(7).integers(0, 2, ids_shape))  # repeats certain
    f = functools.partial(fg.nodes.take, axis=axis)
    ref = functools.partial(jnp.take, axis=axis)
    assert_vjp_matches_reference(f, ref, (x, ids))


def test_matmul_second_derivative():
    with jax.enable_x64(True):
        a, b = _normal(8, (3, 4), (4, 2), dtype=jnp.float64)
        fn = functools.partial(_tanh_matmul, fg.nodes.matmul)
        ref = functools.partial(_tanh_matmul, jnp.matmul)
        assert_grad_of_grad_matches_reference(fn, ref, (a, b), argnums=(0, 1))


def _tanh_matmul(mm, a, b):
    # A nonlinearity after the product makes the second derivative nonzero.
    return jnp.tanh(mm(a, b))
