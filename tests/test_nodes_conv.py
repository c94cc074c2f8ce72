"""conv2d: the hand-written transposed-convolution backward against autodiff."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
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
@pytest.mark.parametrize(("node", "index"), node_cases("conv"))
def test_hand_rule_matches_autodiff(node, index, mode):
    check_node_case(node, index, mode)


def _inputs(x_shape, w_shape, seed=0, dtype="float32"):
    return randn(seed, x_shape, w_shape, (w_shape[-1],), dtype=dtype)


def _oracle(x, w, b, *, stride, padding):
    # An independent forward: lax.conv_general_dilated's own padding names and autodiff.
    strides = (stride, stride) if isinstance(stride, int) else stride
    pad = padding if isinstance(padding, str) else [(padding, padding)] * 2
    y = jax.lax.conv_general_dilated(x, w, strides, pad, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + b


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "stride", "padding"),
    [
        ((2, 6, 6, 2), (3, 3, 2, 3), 1, "SAME"),
        ((1, 7, 6, 2), (3, 3, 2, 2), 2, "SAME"),
        ((1, 7, 7, 1), (3, 2, 1, 2), 2, "VALID"),
        ((1, 8, 5, 3), (2, 2, 3, 2), (2, 1), "VALID"),
        ((1, 5, 5, 2), (3, 3, 2, 2), 3, 1),
        ((2, 4, 4, 1), (1, 1, 1, 4), 1, 2),
        ((1, 5, 6, 2), (4, 4, 2, 1), 2, "SAME"),
    ],
)
def test_strides_paddings_and_kernel_shapes(x_shape, w_shape, stride, padding):
    args = _inputs(x_shape, w_shape)
    f = functools.partial(fg.nodes.conv2d, stride=stride, padding=padding)
    assert_vjp_matches_reference(
        f, functools.partial(_oracle, stride=stride, padding=padding), args
    )


def test_float64_strided():
    with jax.enable_x64(True):
        args = _inputs((1, 7, 7, 2), (3, 3, 2, 3), dtype=jnp.float64)
        f = functools.partial(fg.nodes.conv2d, stride=2, padding="SAME")
        ref = functools.partial(_oracle, stride=2, padding="SAME")
        assert_vjp_matches_reference(f, ref, args)


def test_second_derivative_through_the_rule():
    with jax.enable_x64(True):
        args = _inputs((1, 5, 5, 2), (3, 3, 2, 2), dtype=jnp.float64)
        assert_grad_of_grad_matches_reference(
            lambda x, w, b: jnp.tanh(fg.nodes.conv2d(x, w, b, stride=2)),
            lambda x, w, b: jnp.tanh(_oracle(x, w, b, stride=2, padding="SAME")),
            args,
            argnums=(0, 1, 2),
        )


def test_shape_errors_name_the_layouts():
    x, w, b = _inputs((1, 4, 4, 3), (3, 3, 2, 4))
    with pytest.raises(fg.ShapeMismatchError, match="HWIO"):
        fg.nodes.conv2d(x, w, b)
    with pytest.raises(fg.NodeInputError, match="padding"):
        fg.nodes.conv2d(x, w[:, :, :1].repeat(3, axis=2), b, padding="FULL")
