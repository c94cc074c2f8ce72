"""Graphs: tracing, the forward and backward interpreters, value_and_grad, lump, reference."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcgraph as fg


@fg.node(register=False)
def mul(x, y):
    return x * y


@mul.backward
def _mul_backward(x, y, out, g):
    return g * y, g * x


@fg.node(register=False)
def add(x, y):
    return x + y


@add.backward
def _add_backward(x, y, out, g):
    # Broadcasting: a gradient has the shape of its input, so sum over broadcast axes.
    def unbroadcast(g, shape):
        g = jnp.sum(g, axis=tuple(range(g.ndim - len(shape))))
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
        return jnp.sum(g, axis=axes, keepdims=True)

    return unbroadcast(g, x.shape), unbroadcast(g, y.shape)


@fg.node(register=False, save="output")
def sigmoid(x):
    return 1 / (1 + jnp.exp(-x))


@sigmoid.backward
def _sigmoid_backward(x, out, g):
    return g * out * (1 - out)


def _rand(seed, *shape):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def fan_out(x, w):
    h = mul(x, w)  # h feeds three consumers: the chain rule sums three paths
    return jnp.sum(sigmoid(h) + mul(h, h) + jnp.sin(h))


def test_trace_records_applications_in_topological_order():
    x, w = _rand(0, 3), _rand(1, 3)
    graph = fg.trace(fan_out, x, w)
    names = [a.name for a in graph.applications]
    assert names[0] == "mul"
    assert {"sigmoid", "sin", "reduce_sum"} <= set(names)
    kinds = {a.name: a.kind for a in graph.applications}
    assert kinds["mul"] == "hand" and kinds["sigmoid"] == "hand" and kinds["sin"] == "autodiff"
    produced = {e.id for e in graph.inputs}
    for app in graph.applications:
        assert all(e.id in produced for e in app.edge_inputs)  # inputs exist before use
        produced |= {e.id for e in app.outputs}
    first = graph.applications[0]
    assert first.node is mul
    assert [e.shape for e in first.outputs] == [(3,)]
    assert first.outputs[0].dtype == np.float32
    h = first.outputs[0]
    assert len(graph.consumers(h)) == 3
    assert graph.producer(h) is first


def test_nested_jit_is_inlined_with_its_scope():
    @jax.jit
    def inner(x):
        return sigmoid(x) * 2.0

    graph = fg.trace(lambda x: jnp.sum(inner(x)), _rand(2, 4))
    sig = next(a for a in graph.applications if a.name == "sigmoid")
    assert sig.kind == "hand"
    assert sig.scope == ("inner",)


def test_control_flow_is_kept_as_one_autodiff_node():
    def f(x):
        y = jax.lax.cond(jnp.sum(x) > 0, lambda a: sigmoid(a), lambda a: a * 2, x)
        return jnp.sum(jax.nn.relu(y))

    x = _rand(3, 5)
    graph = fg.trace(f, x)
    names = [a.name for a in graph.applications]
    assert "cond" in names and "relu" in names
    value, grad = fg.value_and_grad(f)(x)
    ref_value, ref_grad = jax.value_and_grad(fg.reference(f))(x)
    np.testing.assert_allclose(value, ref_value, rtol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-7)


def test_forward_puts_a_value_on_every_edge():
    x, w = _rand(4, 3), _rand(5, 3)
    graph = fg.trace(fan_out, x, w)
    values = graph.forward(x, w)
    assert set(values) == {e.id for e in graph.edges}
    np.testing.assert_allclose(values[graph.applications[0].outputs[0].id], x * w)
    np.testing.assert_allclose(graph(x, w), fan_out(x, w), rtol=1e-6)


def test_backward_sums_gradients_where_an_edge_fans_out():
    x, w = _rand(6, 3), _rand(7, 3)
    graph = fg.trace(fan_out, x, w)
    grads = graph.backward(x, w)
    gx, gw = graph.input_gradients(grads)
    want_x, want_w = jax.grad(fg.reference(fan_out), argnums=(0, 1))(x, w)
    np.testing.assert_allclose(gx, want_x, rtol=1e-5)
    np.testing.assert_allclose(gw, want_w, rtol=1e-5)
    # The edge h = x*w gets the sum of its three consumers' gradients.
    h = x * w
    s = 1 / (1 + jnp.exp(-h))
    want_h = s * (1 - s) + 2 * h + jnp.cos(h)
    np.testing.assert_allclose(grads[graph.applications[0].outputs[0].id], want_h, rtol=1e-5)


def test_backward_uses_the_hand_written_rule():
    @fg.node(register=False)
    def wrong_double(x):
        return 2 * x

    @wrong_double.backward
    def _wrong(x, out, g):
        return 3 * g

    def f(x):
        return jnp.sum(wrong_double(x))

    x = jnp.ones(2)
    graph = fg.trace(f, x)
    (hand,) = graph.input_gradients(graph.backward(x))
    (ref,) = graph.input_gradients(graph.backward(x, rules="reference"))
    np.testing.assert_allclose(hand, 3.0)
    np.testing.assert_allclose(ref, 2.0)


def test_forward_and_backward_run_under_jit():
    x, w = _rand(8, 3), _rand(9, 3)
    graph = fg.trace(fan_out, x, w)
    values = jax.jit(graph.forward)(x, w)
    grads = jax.jit(graph.backward)(x, w)
    eager = graph.backward(x, w)
    for e in graph.edges:
        np.testing.assert_allclose(grads[e.id], eager[e.id], rtol=1e-6)
    assert len(values) == len(graph.edges)


def broadcasting(x, b):
    return jnp.sum(sigmoid(add(x, b)))


def several_outputs(x, w):
    h = mul(x, w)
    return sigmoid(h), {"sq": mul(h, h), "sum": jnp.sum(h)}


@pytest.mark.parametrize("jit", [False, True])
def test_value_and_grad_agrees_with_jax_on_broadcasting(jit):
    x, b = _rand(10, 4, 3), _rand(11, 3)
    vg = fg.value_and_grad(broadcasting, argnums=(0, 1))
    vg = jax.jit(vg) if jit else vg
    value, (gx, gb) = vg(x, b)
    ref_value, (rx, rb) = jax.value_and_grad(broadcasting, argnums=(0, 1))(x, b)
    np.testing.assert_allclose(value, ref_value, rtol=1e-6)
    np.testing.assert_allclose(gx, rx, rtol=1e-5)
    assert gb.shape == b.shape
    np.testing.assert_allclose(gb, rb, rtol=1e-5)


def test_backward_with_several_outputs_and_a_cotangent():
    x, w = _rand(12, 3), _rand(13, 3)
    graph = fg.trace(several_outputs, x, w)
    ct = (_rand(14, 3), {"sq": _rand(15, 3), "sum": jnp.float32(0.7)})
    got = graph.input_gradients(graph.backward(x, w, cotangent=ct))
    _, vjp = jax.vjp(fg.reference(several_outputs), x, w)
    chex.assert_trees_all_close(got, vjp(ct), rtol=1e-5)


def test_non_scalar_output_needs_a_cotangent():
    x = _rand(16, 3)
    graph = fg.trace(lambda x: sigmoid(x), x)
    with pytest.raises(ValueError, match="pass cotangent="):
        graph.backward(x)


def test_value_and_grad_on_pytrees_with_aux():
    params = {"w": _rand(17, 3, 2), "b": _rand(18, 2)}
    x = _rand(19, 5, 3)

    def loss(params, x):
        h = add(jnp.dot(x, params["w"]), params["b"])
        out = sigmoid(h)
        return jnp.mean(mul(out, out)), {"mean_h": jnp.mean(h)}

    (value, aux), grads = fg.value_and_grad(loss, has_aux=True)(params, x)
    (ref_value, ref_aux), ref_grads = jax.value_and_grad(loss, has_aux=True)(params, x)
    np.testing.assert_allclose(value, ref_value, rtol=1e-6)
    np.testing.assert_allclose(aux["mean_h"], ref_aux["mean_h"], rtol=1e-6)
    chex.assert_trees_all_close(grads, ref_grads, rtol=1e-5)
    g2, aux2 = fg.grad(loss, has_aux=True)(params, x)
    np.testing.assert_allclose(aux2["mean_h"], ref_aux["mean_h"], rtol=1e-6)
    chex.assert_trees_all_close(g2, ref_grads, rtol=1e-5)


def test_value_and_grad_rejects_integer_arguments():
    with pytest.raises(TypeError, match="argument 0 has dtype int32"):
        fg.value_and_grad(lambda x: jnp.sum(x))(jnp.arange(3))


def test_python_control_flow_on_traced_values_is_a_trace_error():
    def branches(x):
        if jnp.sum(x) > 0:
            return sigmoid(x)
        return x

    with pytest.raises(fg.TraceError, match=r"branches.*jax.lax.cond"):
        fg.trace(branches, jnp.ones(3))


def test_reference_replaces_every_node_with_its_forward():
    @fg.node(register=False)
    def wrong(x):
        return x * x

    @wrong.backward
    def _wrong(x, out, g):
        return g  # wrong on purpose

    def f(x):
        return jnp.sum(wrong(x))

    x = jnp.arange(3.0)
    np.testing.assert_allclose(jax.grad(fg.reference(f))(x), 2 * x)
    np.testing.assert_allclose(jax.grad(f)(x), np.ones(3))


@fg.node(register=False)
def exp(x):
    return jnp.exp(x)


@exp.backward
def _exp_backward(x, out, g):
    return g * out


@fg.node(register=False)
def reciprocal(x):
    return 1 / x


@reciprocal.backward
def _reciprocal_backward(x, out, g):
    return -g * out * out


def gate_sigmoid(x):
    return reciprocal(add(exp(-x), jnp.ones_like(x)))


def test_lumped_sigmoid_equals_the_fused_node():
    lumped = fg.lump(gate_sigmoid, name="lumped_sigmoid")
    x = _rand(20, 7)
    np.testing.assert_allclose(lumped(x), sigmoid(x), rtol=1e-6)
    g = _rand(21, 7)
    (got,) = jax.vjp(lumped, x)[1](g)
    (want,) = jax.vjp(sigmoid, x)[1](g)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    graph = fg.trace(lambda x: jnp.sum(lumped(x)), x)
    assert [a.name for a in graph.hand_applications] == ["lumped_sigmoid"]
    # Its backward is the chain rule through the gates' own rules, under jit too.
    np.testing.assert_allclose(
        jax.jit(jax.grad(lambda x: jnp.sum(lumped(x))))(x),
        jax.grad(lambda x: jnp.sum(sigmoid(x)))(x),
        rtol=1e-5,
    )


def test_graph_rejects_arguments_of_another_shape():
    graph = fg.trace(lambda x: jnp.sum(sigmoid(x)), jnp.ones(3))
    with pytest.raises(fg.TraceError, match="trace it again"):
        graph.forward(jnp.ones(4))


def test_str_lists_applications():
    text = str(fg.trace(fan_out, jnp.ones(2), jnp.ones(2)))
    assert "mul (hand)" in text and "sin (autodiff)" in text


@fg.node(register=False)
def half_square(x):
    return x * x


@half_square.backward
def _half_square_backward(x, out, g):
    return g * x  # wrong on purpose: the factor 2 is missing


def _control_flow(kind, square):
    if kind == "cond":
        return lambda x: jnp.sum(jax.lax.cond(jnp.sum(x) > 0, square, lambda a: a, x))
    if kind == "scan":
        return lambda x: jax.lax.scan(lambda c, xi: (c + square(xi), None), 0.0, x)[0]
    if kind == "while":
        return lambda x: jnp.sum(jax.lax.fori_loop(0, 2, lambda i, a: square(a) * 0.5, x))
    return lambda x: jnp.sum(jax.checkpoint(square)(x))


@pytest.mark.parametrize("kind", ["cond", "scan", "while", "checkpoint"])
def test_reference_reaches_nodes_inside_control_flow(kind):
    x = jnp.arange(1.0, 4.0)
    f = _control_flow(kind, half_square)
    plain = _control_flow(kind, lambda a: a * a)  # the same math without nodes
    np.testing.assert_allclose(jax.grad(fg.reference(f))(x), jax.grad(plain)(x), rtol=1e-6)
    assert not np.allclose(jax.grad(f)(x), jax.grad(plain)(x))  # the wrong rule ran there
