"""The node contract: forward, hand-written backward, saving, pytrees, registry, errors."""

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


@fg.node(save="output", register=False)
def sigmoid(x):
    return 1 / (1 + jnp.exp(-x))


@sigmoid.backward
def _sigmoid_backward(x, out, g):
    assert x is None  # save="output" keeps only the output
    return g * out * (1 - out)


def _rand(key, *shape):
    return jax.random.normal(key, shape, jnp.float32)


def test_grad_matches_autodiff_of_reference():
    x, y = _rand(jax.random.key(1), 3, 4), _rand(jax.random.key(2), 3, 4)
    g = _rand(jax.random.key(3), 3, 4)
    out, vjp = jax.vjp(mul, x, y)
    ref_out, ref_vjp = jax.vjp(mul.reference, x, y)
    np.testing.assert_allclose(out, ref_out)
    for a, b in zip(vjp(g), ref_vjp(g), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_jax_grad_calls_the_hand_written_rule():
    @fg.node(register=False)
    def double(x):
        return 2 * x

    @double.backward
    def _wrong(x, out, g):
        return 5 * g  # deliberately not the derivative

    x = jnp.ones(3)
    grad = jax.grad(lambda x: double(x).sum())(x)
    np.testing.assert_allclose(grad, 5 * np.ones(3))
    ref = jax.grad(lambda x: double.reference(x).sum())(x)
    np.testing.assert_allclose(ref, 2 * np.ones(3))


def test_reference_is_the_undecorated_forward():
    def f(x):
        return x + 1

    n = fg.node(f, register=False)
    assert n.reference is f


@pytest.mark.parametrize(
    "transform",
    [
        lambda f: f,
        jax.jit,
        jax.checkpoint,
        lambda f: jax.jit(jax.checkpoint(f)),
    ],
    ids=["eager", "jit", "checkpoint", "jit-checkpoint"],
)
def test_works_under_transformations(transform):
    def loss(x, y):
        return jnp.sum(sigmoid(mul(x, y)))

    x, y = _rand(jax.random.key(4), 5), _rand(jax.random.key(5), 5)
    value, grads = jax.value_and_grad(transform(loss), argnums=(0, 1))(x, y)
    ref_value, ref_grads = jax.value_and_grad(fg.reference(loss), argnums=(0, 1))(x, y)
    np.testing.assert_allclose(value, ref_value, rtol=1e-6)
    for a, b in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_vmap_of_grad_gives_per_example_gradients():
    x, y = _rand(jax.random.key(6), 4, 3), _rand(jax.random.key(7), 4, 3)
    per_example = jax.vmap(jax.grad(lambda a, b: jnp.sum(mul(a, b))))(x, y)
    np.testing.assert_allclose(per_example, y)


def test_tuple_outputs_and_pytree_inputs():
    @fg.node(register=False)
    def affine_pair(params, x):
        return params["w"] * x + params["b"], x * x

    @affine_pair.backward
    def _affine_pair_backward(params, x, out, g):
        g1, g2 = g
        return (
            {"w": jnp.sum(g1 * x), "b": jnp.sum(g1)},
            g1 * params["w"] + 2 * g2 * x,
        )

    params = {"w": jnp.float32(2.0), "b": jnp.float32(0.5)}
    x = _rand(jax.random.key(8), 4)

    def loss(p, x):
        a, b = affine_pair(p, x)
        return jnp.sum(a * a) + jnp.sum(jnp.sin(b))

    got = jax.grad(loss, argnums=(0, 1))(params, x)
    want = jax.grad(fg.reference(loss), argnums=(0, 1))(params, x)
    chex.assert_trees_all_close(got, want, rtol=1e-5)


def test_keyword_only_arguments_are_static_and_reach_the_rule():
    seen = {}

    @fg.node(register=False)
    def power(x, *, p):
        return x**p

    @power.backward
    def _power_backward(x, out, g, *, p):
        seen["p"] = p
        return g * p * x ** (p - 1)

    x = jnp.arange(1.0, 4.0)
    grad = jax.jit(jax.grad(lambda x: power(x, p=3).sum()))(x)
    np.testing.assert_allclose(grad, 3 * x**2)
    assert seen["p"] == 3


def test_custom_save_keeps_only_residuals():
    @fg.node(register=False, save=lambda x, out: (out,))
    def exp(x):
        return jnp.exp(x)

    @exp.backward
    def _exp_backward(residuals, g):
        (out,) = residuals
        return g * out

    x = _rand(jax.random.key(9), 6)
    np.testing.assert_allclose(jax.grad(lambda x: exp(x).sum())(x), jnp.exp(x), rtol=1e-6)


def test_save_inputs_passes_out_as_none():
    @fg.node(register=False, save="inputs")
    def cube(x):
        return x**3

    @cube.backward
    def _cube_backward(x, out, g):
        assert out is None
        return 3 * g * x**2

    x = jnp.arange(3.0)
    np.testing.assert_allclose(jax.grad(lambda x: cube(x).sum())(x), 3 * x**2)


def test_integer_inputs_get_no_gradient():
    @fg.node(register=False)
    def pick(x, idx):
        return x[idx]

    @pick.backward
    def _pick_backward(x, idx, out, g):
        return jnp.zeros_like(x).at[idx].add(g), None

    x = jnp.arange(4.0)
    idx = jnp.array([0, 2, 2])
    grad = jax.grad(lambda x: pick(x, idx).sum())(x)
    np.testing.assert_allclose(grad, [1.0, 0.0, 2.0, 0.0])


def test_registry_enumerates_registered_nodes_by_qualified_name():
    @fg.node(example=lambda key: (jax.random.normal(key, (2,)),))
    def registered_square(x):
        return x * x

    nodes = fg.registry()
    name = f"{__name__}.test_registry_enumerates_registered_nodes_by_qualified_name.<locals>."
    assert nodes[name + "registered_square"] is registered_square
    assert fg.get_node(name + "registered_square") is registered_square
    assert mul not in fg.registry().values()  # register=False
    (example,) = registered_square.examples(jax.random.key(0))
    assert example.args[0].shape == (2,)
    assert example.static == {}


def test_examples_may_give_static_keywords():
    @fg.node(register=False, example=lambda key: fg.Example((jnp.ones(2),), {"p": 2}))
    def power(x, *, p):
        return x**p

    (example,) = power.examples(jax.random.key(0))
    assert example.static == {"p": 2}
    assert fg.examples_of(power, jax.random.key(0))[0].static == {"p": 2}


def test_example_decorator_for_plain_functions():
    @fg.example(lambda key: (jnp.ones(3),))
    def loss(x):
        return jnp.sum(sigmoid(x))

    (example,) = fg.examples_of(loss, jax.random.key(0))
    assert example.args[0].shape == (3,)


# -- errors that name the node -----------------------------------------------------------------


def _node_with_rule(rule, save="all"):
    @fg.node(register=False, save=save)
    def bad_node(x, y):
        return x * y

    bad_node.backward(rule)
    return bad_node


def _grad_of(n):
    x, y = jnp.ones((2, 3)), jnp.ones((2, 3))
    return jax.grad(lambda x, y: n(x, y).sum(), argnums=(0, 1))(x, y)


def test_wrong_number_of_gradients():
    n = _node_with_rule(lambda x, y, out, g: (g * y,))
    with pytest.raises(fg.BackwardRuleError, match=r"'bad_node'.*returned 1 gradient.*expected 2"):
        _grad_of(n)


def test_wrong_gradient_shape_names_input_and_hints_at_broadcasting():
    n = _node_with_rule(lambda x, y, out, g: (g * y, jnp.sum(g * x, axis=0)))
    with pytest.raises(fg.BackwardRuleError, match=r"'bad_node'.*input 'y'.*\(3,\).*\(2, 3\)"):
        _grad_of(n)


def test_wrong_gradient_dtype_is_caught():
    n = _node_with_rule(lambda x, y, out, g: (g * y, (g * x).astype(jnp.bfloat16)))
    with pytest.raises(fg.BackwardRuleError, match=r"'bad_node'.*input 'y'.*bfloat16.*float32"):
        _grad_of(n)


def test_none_for_a_differentiable_input_is_an_error():
    n = _node_with_rule(lambda x, y, out, g: (g * y, None))
    with pytest.raises(fg.BackwardRuleError, match=r"None for input 'y'"):
        _grad_of(n)


def test_non_array_input_is_an_error():
    with pytest.raises(fg.NodeInputError, match=r"'mul'.*input 1 \(y\).*str"):
        mul(jnp.ones(2), "two")


def test_none_input_is_an_error():
    with pytest.raises(fg.NodeInputError, match=r"'mul'.*input 0 \(x\) is None"):
        mul(None, jnp.ones(2))


def test_array_as_static_keyword_is_an_error():
    @fg.node(register=False)
    def scale(x, *, c):
        return x * c

    with pytest.raises(fg.NodeInputError, match=r"'scale'.*'c' is an array"):
        scale(jnp.ones(2), c=jnp.ones(2))


def test_differentiating_before_a_backward_exists():
    @fg.node(register=False)
    def no_rule(x):
        return x

    np.testing.assert_allclose(no_rule(jnp.ones(2)), 1.0)  # the forward alone is fine
    with pytest.raises(fg.MissingBackwardError, match=r"'no_rule'.*@no_rule.backward"):
        jax.grad(lambda x: no_rule(x).sum())(jnp.ones(2))


def test_backward_with_wrong_signature_fails_at_definition():
    with pytest.raises(fg.NodeDefinitionError, match=r"'mul2'.*takes 3.*expected 4.*x, y, out, g"):

        @fg.node(register=False)
        def mul2(x, y):
            return x * y

        @mul2.backward
        def _mul2_backward(x, y, g):
            return g, g


def test_bad_save_option():
    with pytest.raises(fg.NodeDefinitionError, match="save='everything'"):
        fg.node(lambda x: x, save="everything", register=False)


def test_dtype_clash_in_the_forward_is_not_called_a_shape_mismatch():
    with pytest.raises(fg.NodeInputError, match=r"'mul'.*dtypes that do not mix"):
        mul(jnp.ones(2, jnp.float32), jnp.ones(2, jnp.bfloat16))
