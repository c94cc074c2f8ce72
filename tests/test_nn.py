from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcgraph as fg
from funcgraph import nn, nodes
from funcgraph.errors import ShapeMismatchError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _assert_trees_close(a: object, b: object, rtol: float = 1e-4) -> None:
    """Close up to float32 rounding: entries near zero are judged against the leaf's scale."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        y = np.asarray(y)
        scale = float(np.max(np.abs(y))) if y.size else 0.0
        np.testing.assert_allclose(np.asarray(x), y, rtol=rtol, atol=1e-5 * scale + 1e-7)


def _grads_match_reference(model: nn.Layer, params: object, x: jax.Array, y: jax.Array) -> None:
    """The hand-written rules (jax.grad through custom_vjp) against autodiff of the pure
    forward of the same model: the oracle."""

    def loss(p: object) -> jax.Array:
        return nodes.softmax_cross_entropy(model.apply(p, x), y)

    _assert_trees_close(
        jax.jit(jax.grad(loss))(params), jax.jit(jax.grad(fg.reference(loss)))(params)
    )


def test_dense_layer_shapes_and_values(key: jax.Array) -> None:
    layer = nn.dense(5)
    out_shape, params = layer.init(key, (3, 4))
    assert out_shape == (3, 5)
    assert params["w"].shape == (4, 5) and params["b"].shape == (5,)
    x = jax.random.normal(key, (3, 4))
    np.testing.assert_allclose(layer.apply(params, x), x @ params["w"] + params["b"], rtol=1e-6)


def test_mlp_shapes_and_gradients(key: jax.Array) -> None:
    model = nn.mlp([6, 16, 8, 3])
    out_shape, params = model.init(key)
    assert out_shape == (1, 3)
    assert [p["w"].shape for p in params if p] == [(6, 16), (16, 8), (8, 3)]
    x = jax.random.normal(key, (10, 6))
    y = jnp.arange(10, dtype=jnp.int32) % 3
    assert model.apply(params, x).shape == (10, 3)
    _grads_match_reference(model, params, x, y)


def test_mlp_refuses_wrong_input_width(key: jax.Array) -> None:
    with pytest.raises(ShapeMismatchError, match="has 5 features, expected 6"):
        nn.mlp([6, 3]).init(key, (2, 5))
    with pytest.raises(ValueError, match="at least"):
        nn.mlp([6])


def test_cnn_shapes_and_gradients(key: jax.Array) -> None:
    model = nn.cnn(4, channels=(3, 5), hidden=(7,))
    out_shape, params = model.init(key, (2, 8, 8, 1))
    assert out_shape == (2, 4)
    x = jax.random.normal(key, (2, 8, 8, 1))
    y = jnp.array([0, 3], jnp.int32)
    _grads_match_reference(model, params, x, y)


def test_lenet_is_lenet5(key: jax.Array) -> None:
    # Shapes only: init traces (under eval_shape) without drawing a number.
    box = []

    def params_only(key: jax.Array) -> object:
        out_shape, params = nn.lenet().init(key)
        box.append(out_shape)
        return params

    params = jax.eval_shape(params_only, key)
    assert box == [(1, 10)]
    shapes = [p["w"].shape for p in params if p]
    assert shapes == [(5, 5, 1, 6), (5, 5, 6, 16), (7 * 7 * 16, 120), (120, 84), (84, 10)]


def _attention_oracle(params: dict, x: jax.Array, heads: int, causal: bool) -> jax.Array:
    """Multi-head self-attention written directly in jnp, independently of the nodes."""
    b, s, d = x.shape
    qkv = x @ params["qkv"]["w"] + params["qkv"]["b"]
    q, k, v = (t.reshape(b, s, heads, d // heads) for t in jnp.split(qkv, 3, axis=-1))
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d // heads)
    if causal:
        scores = jnp.where(jnp.tril(jnp.ones((s, s), bool)), scores, -jnp.inf)
    o = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v).reshape(b, s, d)
    return o @ params["out"]["w"] + params["out"]["b"]


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_matches_oracle(key: jax.Array, causal: bool) -> None:
    layer = nn.multi_head_attention(8, 2, causal=causal)
    out_shape, params = layer.init(key, (2, 5, 8))
    assert out_shape == (2, 5, 8)
    x = jax.random.normal(jax.random.fold_in(key, 1), (2, 5, 8))
    np.testing.assert_allclose(
        layer.apply(params, x), _attention_oracle(params, x, 2, causal), rtol=1e-5, atol=1e-6
    )


def test_transformer_block_gradients_and_causality(key: jax.Array) -> None:
    block = nn.transformer_block(8, 2, 16, causal=True)
    out_shape, params = block.init(key, (2, 6, 8))
    assert out_shape == (2, 6, 8)
    x = jax.random.normal(jax.random.fold_in(key, 1), (2, 6, 8))
    y = block.apply(params, x)
    # Causal: changing the future leaves the past unchanged.
    x2 = x.at[:, 4:].add(1.0)
    y2 = block.apply(params, x2)
    np.testing.assert_allclose(y[:, :4], y2[:, :4], rtol=1e-5, atol=1e-6)
    assert not np.allclose(y[:, 4:], y2[:, 4:])

    def loss(p: object) -> jax.Array:
        return jnp.sum(block.apply(p, x) ** 2)

    _assert_trees_close(
        jax.jit(jax.grad(loss))(params), jax.jit(jax.grad(fg.reference(loss)))(params)
    )


def test_transformer_block_uses_hand_written_nodes(key: jax.Array) -> None:
    block = nn.transformer_block(8, 2, 16)
    _, params = block.init(key)
    graph = fg.trace(block.apply, params, jnp.ones((1, 3, 8), jnp.float32))
    hand = {a.name for a in graph.applications if a.kind == "hand"}
    assert {"layer_norm", "dense", "attention", "gelu", "add", "split", "reshape"} <= hand


def test_dropout_needs_a_key_to_act(key: jax.Array) -> None:
    model = nn.mlp([4, 64, 2], dropout_rate=0.5)
    _, params = model.init(key)
    x = jnp.ones((3, 4), jnp.float32)
    np.testing.assert_array_equal(model.apply(params, x), model.apply(params, x))
    a = model.apply(params, x, key=jax.random.key(1))
    b = model.apply(params, x, key=jax.random.key(1))
    c = model.apply(params, x, key=jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, model.apply(params, x))


def test_sequential_composes_layers_and_plain_functions(key: jax.Array) -> None:
    def double() -> nn.Layer:
        # A user layer from two plain functions, without a key argument.
        return nn.Layer(lambda key, shape: (shape, ()), lambda params, x: nodes.scale(x, c=2.0))

    model = nn.sequential(nn.dense(3), double(), nn.tanh(), nn.residual(nn.dense(3)))
    out_shape, params = model.init(key, (4, 2))
    assert out_shape == (4, 3) and len(params) == 4
    x = jax.random.normal(key, (4, 2))
    h = jnp.tanh(2.0 * (x @ params[0]["w"] + params[0]["b"]))
    expected = h + h @ params[3]["w"] + params[3]["b"]
    np.testing.assert_allclose(model.apply(params, x, key=key), expected, rtol=1e-5)
    with pytest.raises(ShapeMismatchError, match="params for 3 layers"):
        model.apply(params[:3], x)


def test_residual_refuses_shape_change(key: jax.Array) -> None:
    with pytest.raises(ShapeMismatchError, match="same shape"):
        nn.residual(nn.dense(5)).init(key, (2, 3))


def test_conv_layer_refuses_non_nhwc(key: jax.Array) -> None:
    with pytest.raises(ShapeMismatchError, match="NHWC"):
        nn.conv2d(4).init(key, (2, 8, 8))


def test_embedding_layer(key: jax.Array) -> None:
    layer = nn.embedding(11, 4)
    out_shape, params = layer.init(key, (2, 3))
    assert out_shape == (2, 3, 4)
    ids = jnp.array([[1, 2, 1], [0, 10, 3]], jnp.int32)
    np.testing.assert_array_equal(layer.apply(params, ids), params["table"][ids])


def test_nodes_inside_an_equinox_module(monkeypatch: pytest.MonkeyPatch) -> None:
    eqx = pytest.importorskip("equinox")
    spec = importlib.util.spec_from_file_location(
        "equinox_example", EXAMPLES / "equinox_example.py"
    )
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "equinox_example", example)  # dataclasses look it up
    spec.loader.exec_module(example)

    kx, ky, km = jax.random.split(jax.random.key(0), 3)
    model = example.MLP((6, 16, 3), key=km)
    x = jax.random.normal(kx, (8, 6))
    labels = jax.random.randint(ky, (8,), 0, 3)
    grads = eqx.filter_jit(eqx.filter_grad(example.loss))(model, x, labels)
    oracle = eqx.filter_grad(fg.reference(example.loss))(model, x, labels)
    _assert_trees_close(grads, oracle)
    # The module's graph is made of the hand-written nodes.
    graph = fg.trace(example.loss, model, x, labels)
    assert {"dense", "tanh", "layer_norm", "softmax_cross_entropy"} <= {
        a.name for a in graph.applications if a.kind == "hand"
    }
