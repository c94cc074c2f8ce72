"""fg.check: planted wrong rules are caught and blamed, correct rules pass, dtype handling."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcgraph as fg
from funcgraph.checking.compare import judge, measure

# -- nodes with correct rules -----------------------------------------------------------------


@fg.node(register=False)
def mul(x, y):
    return x * y


@mul.backward
def _mul_backward(x, y, out, g):
    return g * y, g * x


@fg.node(register=False, save="output")
def tanh(x):
    return jnp.tanh(x)


@tanh.backward
def _tanh_backward(x, out, g):
    return g * (1 - out * out)


@fg.node(register=False)
def matmul(a, b):
    return a @ b


@matmul.backward
def _matmul_backward(a, b, out, g):
    return g @ b.T, a.T @ g


@fg.node(register=False)
def add_row(x, b):
    return x + b  # b broadcast over the rows of x


@add_row.backward
def _add_row_backward(x, b, out, g):
    return g, jnp.sum(g, axis=0)


@fg.node(register=False, save="output")
def softmax(x):
    z = jnp.exp(x - jnp.max(x, axis=-1, keepdims=True))
    return z / jnp.sum(z, axis=-1, keepdims=True)


@softmax.backward
def _softmax_backward(x, out, g):
    return out * (g - jnp.sum(g * out, axis=-1, keepdims=True))


@fg.node(register=False)
def logsumexp(x):
    m = jnp.max(x, axis=-1, keepdims=True)
    return jnp.squeeze(m, -1) + jnp.log(jnp.sum(jnp.exp(x - m), axis=-1))


@logsumexp.backward
def _logsumexp_backward(x, out, g):
    return g[..., None] * jnp.exp(x - out[..., None])


@fg.node(register=False, kinks=lambda x: float(jnp.min(jnp.abs(x))))
def relu(x):
    return jnp.maximum(x, jnp.zeros_like(x))


@relu.backward
def _relu_backward(x, out, g):
    return jnp.where(x > 0, g, jnp.zeros_like(g))


# -- the seven planted errors -------------------------------------------------------------------


def _planted_mul(kind: str) -> fg.Node:
    @fg.node(register=False, name=f"mul_{kind}")
    def planted(x, y):
        return x * y

    @planted.backward
    def _planted_backward(x, y, out, g):
        if kind == "sign":
            return g * y, -(g * x)
        if kind == "scale":
            return g * y, 1.001 * (g * x)
        if kind == "swap":
            return g * x, g * y
        if kind == "dtype":
            return g * y, (g * x).astype(jnp.float16)
        if kind == "ignores_g":
            return y, x
        raise AssertionError(kind)

    return planted


@fg.node(register=False, name="matmul_transposed")
def matmul_transposed(a, b):
    return a @ b


@matmul_transposed.backward
def _matmul_transposed_backward(a, b, out, g):
    return g @ b, a.T @ g  # should be g @ b.T


@fg.node(register=False, name="add_row_unreduced")
def add_row_unreduced(x, b):
    return x + b


@add_row_unreduced.backward
def _add_row_unreduced_backward(x, b, out, g):
    return g, g  # b was broadcast: its gradient must be summed over the rows


def _rand(seed: int, *shape: int) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


X, Y, B = _rand(0, 4, 4), _rand(1, 4, 4), _rand(2, 4)

# (planted node, arguments, the input whose gradient is wrong, an oracle that must flag it)
PLANTED = {
    "sign flip": (_planted_mul("sign"), (X, Y), {"y"}, "autodiff"),
    "factor 1.001": (_planted_mul("scale"), (X, Y), {"y"}, "autodiff"),
    "transposed matrix": (matmul_transposed, (X, Y), {"a"}, "autodiff"),
    "missing reduction": (add_row_unreduced, (X, B), {"b"}, "contract:shape"),
    "swapped inputs": (_planted_mul("swap"), (X, Y), {"x", "y"}, "autodiff"),
    "wrong dtype": (_planted_mul("dtype"), (X, Y), {"y"}, "contract:dtype"),
    "ignores g": (_planted_mul("ignores_g"), (X, Y), {"x", "y"}, "contract:zero-g"),
}


@pytest.mark.parametrize("form", list(PLANTED))
def test_planted_error_in_a_single_node_is_caught(form: str) -> None:
    node, args, wrong, oracle = PLANTED[form]
    report = fg.check(node, *args, seeds=1)
    assert not report.ok
    assert {r.input for r in report.failures} == wrong
    assert oracle in {r.oracle for r in report.failures}
    assert all(r.node == node.name and r.subject == "node" for r in report.culprits)
    with pytest.raises(AssertionError, match=node.name):
        fg.assert_gradients(node, *args, seeds=1)


@pytest.mark.parametrize("form", list(PLANTED))
def test_planted_error_inside_a_graph_is_blamed_on_its_node(form: str) -> None:
    node, args, wrong, _ = PLANTED[form]

    def loss(x, y):
        h = tanh(x)  # a correct node before the wrong one ...
        return jnp.sum(tanh(node(h, y)) * 2.0)  # ... and one after it

    report = fg.check(loss, *args, seeds=1, contracts=False)
    assert not report.ok
    culprits = report.culprits
    assert culprits, str(report)
    assert {r.node for r in culprits} == {node.name}
    assert {r.input for r in culprits} == wrong
    graph = fg.trace(loss, *args)
    assert {graph.applications[r.application].name for r in culprits} == {node.name}
    # The correct tanh applications are checked too, and pass.
    blamed = [r for r in report.rows if r.subject == "application" and r.node == "tanh"]
    assert len(blamed) == 2 and all(r.ok for r in blamed)
    for r in culprits:
        if r.oracle == "autodiff":
            assert r.worst_index is not None and r.hand_value != r.autodiff_value


def test_blame_names_the_worst_element_and_both_values() -> None:
    node = _planted_mul("sign")

    def loss(x, y):
        return jnp.sum(node(tanh(x), y))

    x, y = _rand(3, 2, 3), _rand(4, 2, 3)
    report = fg.check(loss, x, y, seeds=1, contracts=False)
    (row,) = report.culprits
    # The true adjoint of y's node input is tanh(x) (the output adjoint is all ones).
    expected = np.asarray(jnp.tanh(x))
    assert row.worst_index == tuple(np.unravel_index(np.argmax(np.abs(expected)), (2, 3)))
    assert row.autodiff_value == pytest.approx(float(expected[row.worst_index]), rel=1e-6)
    assert row.hand_value == pytest.approx(-row.autodiff_value)
    assert "mul_sign[" in str(report) and "'y'" in str(report)


def test_two_wrong_nodes_in_one_graph_are_both_named() -> None:
    sign, swap = _planted_mul("sign"), _planted_mul("swap")

    def loss(x, y):
        return jnp.sum(swap(sign(x, y), y))

    report = fg.check(loss, _rand(5, 3, 3), _rand(6, 3, 3), seeds=1, contracts=False)
    assert {r.node for r in report.culprits} == {"mul_sign", "mul_swap"}


CORRECT = {
    "mul": (mul, (_rand(10, 5, 3), _rand(11, 5, 3))),
    "tanh": (tanh, (_rand(12, 7),)),
    "matmul": (matmul, (_rand(13, 4, 6), _rand(14, 6, 3))),
    "add_row": (add_row, (_rand(15, 5, 3), _rand(16, 3))),
    "softmax": (softmax, (3 * _rand(17, 4, 6),)),
    "logsumexp": (logsumexp, (3 * _rand(18, 4, 6),)),
    "relu": (relu, (_rand(19, 6, 5),)),
}
N_SEEDS = 25


@pytest.mark.parametrize("name", list(CORRECT))
def test_correct_rules_pass_in_float32_over_many_seeds(name: str) -> None:
    node, args = CORRECT[name]
    report = fg.check(node, *args, seeds=N_SEEDS)
    assert report.ok, str(report)
    assert all(r.dtype == "float32" for r in report.rows)
    slopes = [r.slope for r in report.rows if r.oracle == "finite-diff" and r.slope is not None]
    assert all(s > 1.5 for s in slopes)


def test_correct_graph_passes_over_many_seeds() -> None:
    def net(w1, b1, w2, x):
        h = relu(add_row(matmul(x, w1), b1))
        return jnp.sum(logsumexp(matmul(tanh(h), w2)) - jnp.sum(softmax(h), axis=-1))

    args = (_rand(20, 4, 8), _rand(21, 8), _rand(22, 8, 3), _rand(23, 5, 4))
    report = fg.check(net, *args, seeds=8, contracts=False)
    assert report.ok, str(report)
    assert len({r.application for r in report.rows if r.subject == "application"}) == 7


def test_factor_1_001_on_a_1000_by_1000_input_is_caught_quickly() -> None:
    x, y = _rand(30, 1000, 1000), _rand(31, 1000, 1000)
    start = time.perf_counter()
    report = fg.check(_planted_mul("scale"), x, y, seeds=1)
    elapsed = time.perf_counter() - start
    assert not report.ok
    row = next(r for r in report.failures if r.oracle == "autodiff")
    assert row.input == "y" and row.max_rel == pytest.approx(1e-3, rel=0.01)
    assert "persists at higher precision" in row.message
    assert fg.check(mul, x, y, seeds=1).ok
    assert elapsed < 60  # a few seconds on an idle machine


def test_a_float32_ambiguity_is_settled_in_float64() -> None:
    # An error of about a hundred float32 ulps could be rounding in a long computation; the
    # float64 re-run shows that it does not shrink with precision, so it is not.
    @fg.node(register=False)
    def tiny(x):
        return 2 * x

    @tiny.backward
    def _tiny_backward(x, out, g):
        return (2 + 2e-5) * g

    report = fg.check(tiny, _rand(40, 50), seeds=1, oracles=("autodiff",), contracts=False)
    assert not report.ok
    assert "persists at higher precision" in report.failures[0].message


def test_judge_tells_rounding_from_error() -> None:
    rng = np.random.default_rng(0)
    b = rng.standard_normal(100)
    eps32, eps64 = float(np.finfo(np.float32).eps), float(np.finfo(np.float64).eps)
    lo = measure(b * (1 + 300 * eps32), b)  # ambiguous in float32 ...
    assert judge(measure(b * (1 + 300 * eps64), b), eps64).ok  # ... rounding in float64
    assert judge(lo, eps32, measure(b * (1 + 300 * eps64), b), eps64).ok
    assert not judge(lo, eps32, measure(b * (1 + 300 * eps32), b), eps64).ok
    assert not judge(lo, eps32, rtol=1e-6).ok and judge(lo, eps32, rtol=1e-4).ok


def test_finite_differences_report_taylor_slopes() -> None:
    good = fg.check(tanh, _rand(50, 6), seeds=2, oracles=("finite-diff",), contracts=False)
    (row,) = good.rows
    assert row.ok and row.slope == pytest.approx(2, abs=0.3)
    bad = fg.check(_planted_mul("sign"), X, Y, seeds=1, oracles=("finite-diff",), contracts=False)
    (wrong,) = bad.failures
    assert wrong.input == "y" and wrong.slope == pytest.approx(1, abs=0.2)


def test_finite_differences_of_a_linear_node_are_exact() -> None:
    report = fg.check(mul, X, Y, seeds=1, oracles=("finite-diff",), contracts=False)
    assert report.ok
    assert all("rounding level" in r.message for r in report.rows)


def test_finite_differences_respect_kinks() -> None:
    near = jnp.array([1.0, -2.0, 3e-9, 0.5])  # within 3e-9 of relu's kink
    report = fg.check(relu, near, seeds=1, oracles=("finite-diff",), contracts=False)
    (row,) = report.rows
    assert row.ok and row.skipped and "kink" in row.message
    # In a graph, the kink distance is carried back to the inputs to first order.
    report = fg.check(lambda x: jnp.sum(relu(3.0 * x)), near, seeds=1, contracts=False)
    assert report.ok
    fd = next(r for r in report.rows if r.oracle == "finite-diff")
    assert fd.skipped and "relu[" in fd.message


def test_adjoint_test_needs_no_jacobian() -> None:
    report = fg.check(matmul, _rand(60, 3, 4), _rand(61, 4, 2), oracles=("adjoint",))
    assert report.ok and {r.oracle for r in report.rows if not r.oracle.startswith("c")} == {
        "adjoint"
    }


def test_float64_and_bfloat16_dtypes() -> None:
    with jax.enable_x64(False):
        report = fg.check(softmax, _rand(70, 3, 5), seeds=2, dtypes=("float64", "bfloat16"))
    assert report.ok, str(report)
    assert {r.dtype for r in report.rows} == {"float64", "bfloat16"}
    assert not jax.config.jax_enable_x64  # x64 was switched on locally only


def test_second_order_through_the_hand_written_rules() -> None:
    report = fg.check(tanh, _rand(80, 5), seeds=1, second_order=True)
    assert report.ok
    assert "contract:second-order" in {r.oracle for r in report.rows}

    @fg.node(register=False, save="output")
    def tanh_frozen(x):
        return jnp.tanh(x)

    @tanh_frozen.backward
    def _tanh_frozen_backward(x, out, g):
        # Right first derivative, but out is treated as a constant: wrong second derivative.
        return g * (1 - jax.lax.stop_gradient(out) ** 2)

    report = fg.check(tanh_frozen, _rand(80, 5), seeds=1, second_order=True)
    assert {r.oracle for r in report.failures} == {"contract:second-order"}


def test_examples_are_used_when_no_arguments_are_given() -> None:
    @fg.node(register=False, example=[lambda k: (_rand(1, 3),), lambda k: (_rand(2, 2, 2),)])
    def cube(x):
        return x**3

    @cube.backward
    def _cube_backward(x, out, g):
        return 3 * x * x * g

    report = fg.check(cube, seeds=1, contracts=False)
    assert report.ok and {r.example for r in report.rows} == {0, 1}
    with pytest.raises(ValueError, match="no examples"):
        fg.check(mul)


def test_static_keywords_and_integer_inputs() -> None:
    @fg.node(register=False)
    def pick(x, idx, *, scale: float):
        return scale * x[idx]

    @pick.backward
    def _pick_backward(x, idx, out, g, *, scale: float):
        return jnp.zeros_like(x).at[idx].add(scale * g), None

    idx = jnp.array([0, 2, 2])
    report = fg.check(pick, _rand(90, 4), idx, static={"scale": 1.5}, seeds=2)
    assert report.ok, str(report)
    assert {r.input for r in report.rows} == {"x"}


def test_a_forward_that_fails_is_a_failed_row() -> None:
    report = fg.check(mul, X, _rand(1, 3), seeds=1)
    assert not report.ok and report.rows[0].oracle == "forward"


def test_checking_changes_no_global_config() -> None:
    before = jax.config.jax_enable_x64
    fg.check(tanh, _rand(0, 3), seeds=1, dtypes=("float64",), contracts=False)
    assert jax.config.jax_enable_x64 == before


def test_pytree_arguments_are_named_by_path() -> None:
    def mlp(params, x):
        h = tanh(add_row(matmul(x, params["w1"]), params["b1"]))
        return jnp.sum(matmul(h, params["w2"]))

    params = {"w1": _rand(100, 3, 4), "b1": _rand(101, 4), "w2": _rand(102, 4, 2)}
    report = fg.check(mlp, params, _rand(103, 5, 3), seeds=2, contracts=False)
    assert report.ok, str(report)
    top = {r.input for r in report.rows if r.subject == "function"}
    assert top == {"params['b1']", "params['w1']", "params['w2']", "x"}


def test_lumped_nodes_are_checked_like_any_node() -> None:
    lumped = fg.lump(lambda x, y: tanh(mul(x, y)), name="tanh_mul")
    assert fg.check(lumped, X, Y, seeds=1).ok


def test_a_rule_that_differs_under_jit_breaks_the_jit_contract() -> None:
    @fg.node(register=False)
    def double(x):
        return 2 * x

    @double.backward
    def _double_backward(x, out, g):
        # Right when traced (as under jit), wrong when run eagerly on concrete values.
        return (2.0 if isinstance(g, jax.core.Tracer) else 2.5) * g

    report = fg.check(double, X, seeds=1)
    assert {r.oracle for r in report.failures} == {"contract:jit"}


def test_a_rule_that_only_runs_eagerly_breaks_the_jit_contract() -> None:
    @fg.node(register=False)
    def double(x):
        return 2 * x

    @double.backward
    def _double_backward(x, out, g):
        if float(jnp.sum(g)) > 1e9:  # Python control flow on a value: fails when traced
            return g
        return 2 * g

    (row,) = fg.check(double, X, seeds=1).failures
    assert row.oracle == "contract:jit" and "eagerly but not under jax.jit" in row.message


def test_non_finite_inputs_or_values_fail_and_point_to_debug_nans():
    def log_sum(x):
        return jnp.sum(fg.nodes.log(x))

    at_zero = fg.check(log_sum, jnp.array([0.0, 1.0]))
    assert not at_zero.ok
    (row,) = at_zero.failures
    assert row.oracle == "finite" and "fg.debug_nans(log_sum" in row.message
    nan_input = fg.check(log_sum, jnp.array([jnp.nan, 1.0]))
    (row,) = nan_input.failures
    assert row.input == "x" and "1 non-finite element" in row.message
    assert fg.check(log_sum, jnp.array([0.5, 1.0])).ok
