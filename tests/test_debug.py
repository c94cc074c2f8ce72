"""fg.debug_nans: the first node whose forward output or backward gradient is not finite."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcgraph as fg


@fg.node(register=False)
def log(x):
    return jnp.log(x)


@log.backward
def _log_backward(x, out, g):
    return g / x


@fg.node(register=False)
def sqrt(x):
    return jnp.sqrt(x)


@sqrt.backward
def _sqrt_backward(x, out, g):
    return g * 0.5 / out


@fg.node(register=False)
def exp(x):
    return jnp.exp(x)


@exp.backward
def _exp_backward(x, out, g):
    return g * out


@fg.node(register=False)
def softplus(x):
    return jnp.logaddexp(x, 0.0)


@softplus.backward
def _softplus_backward(x, out, g):
    # The textbook rule, written naively: exp(x) / (1 + exp(x)) is inf/inf = NaN for large x,
    # although the forward (logaddexp) is finite there.
    e = jnp.exp(x)
    return g * e / (1.0 + e)


def _finite_in_forward(graph: fg.Graph, values: dict[int, jax.Array], edges) -> bool:
    return all(bool(jnp.all(jnp.isfinite(values[e.id]))) for e in edges)


def test_forward_nan_names_the_first_node_not_the_ones_it_poisons() -> None:
    def loss(w, x):
        h = x @ w
        return jnp.sum(exp(log(h * h)))  # log(0) = -inf, then exp and sum inherit it

    w = jnp.array([1.0, -1.0])
    x = jnp.array([[1.0, 1.0], [2.0, 0.5]])
    report = fg.debug_nans(loss, w, x)
    assert report.found and report.phase == "forward"
    app = report.application
    assert app is not None and app.name == "log" and app.kind == "hand"
    # Independent check on the graph's own forward pass: this application's inputs are all
    # finite, its output is not, and every earlier application's outputs are finite.
    values = report.graph.forward(w, x)
    assert _finite_in_forward(report.graph, values, app.edge_inputs)
    assert not _finite_in_forward(report.graph, values, app.outputs)
    for earlier in report.graph.applications[: app.index]:
        assert _finite_in_forward(report.graph, values, earlier.outputs)
    (summary,) = report.inputs
    assert summary.zeros == 1 and summary.finite and summary.label.startswith("x ")
    assert report.outputs[0].neginf == 1
    text = str(report)
    assert "node 'log'" in text and f"application [{app.index}]" in text and "1 zero" in text


def test_forward_nan_in_plain_jax_names_the_primitive() -> None:
    def loss(x):
        return jnp.sum(jnp.sqrt(x - 1.0))

    report = fg.debug_nans(loss, jnp.array([0.0, 2.0]))
    assert report.phase == "forward"
    assert report.node_name == "sqrt" and report.application.kind == "autodiff"
    assert report.outputs[0].nan == 1


def test_non_finite_arguments_are_reported_by_path() -> None:
    def loss(params, x):
        return jnp.sum(params["w"] * x) + params["b"]

    params = {"w": jnp.ones(3), "b": jnp.array(jnp.inf)}
    report = fg.debug_nans(loss, params, jnp.array([1.0, jnp.nan, 2.0]))
    assert report.phase == "input" and report.application is None
    labels = {s.label: s for s in report.inputs}
    assert set(labels) == {"args[0]['b']", "args[1]"}
    assert labels["args[0]['b']"].posinf == 1 and labels["args[1]"].nan == 1
    assert "args[1]" in str(report) and "1 NaN" in str(report)


def test_backward_inf_at_a_kink_is_localized_and_matches_autodiff() -> None:
    def loss(x):
        return jnp.sum(sqrt(x))

    x = jnp.array([0.0, 1.0, 4.0])
    report = fg.debug_nans(loss, x)
    assert report.phase == "backward" and report.node_name == "sqrt"
    assert report.outputs[0].posinf == 1 and report.inputs[0].zeros == 1
    assert all(s.finite for s in report.upstream)
    # The oracle agrees that the gradient really is non-finite (a true kink, not a rule bug).
    assert not np.isfinite(np.asarray(jax.grad(fg.reference(loss))(x))).all()
    assert fg.debug_nans(loss, x, rules="reference").node_name == "sqrt"


def test_backward_nan_from_a_naive_rule_is_blamed_on_the_rule() -> None:
    def loss(x):
        return jnp.sum(softplus(x))

    x = jnp.array([1.0, 200.0])
    report = fg.debug_nans(loss, x)
    assert report.phase == "backward" and report.node_name == "softplus"
    assert report.outputs[0].nan == 1
    assert "backward pass" in str(report) and "node 'softplus'" in str(report)
    # Autodiff of the forward is finite there, so the reference rules find nothing.
    assert np.isfinite(np.asarray(jax.grad(fg.reference(loss))(x))).all()
    assert not fg.debug_nans(loss, x, rules="reference").found


def test_overflow_where_a_fanned_out_gradient_is_summed() -> None:
    def loss(x):
        return jnp.sum(x * jnp.float16(40000)) + jnp.sum(x * jnp.float16(40000))

    x = jnp.array([1e-3], jnp.float16)
    report = fg.debug_nans(loss, x)
    assert report.phase == "backward" and report.node_name == "mul"
    # Each consumer's gradient is finite on its own; their sum on the shared edge is not.
    assert all(s.finite for s in report.outputs)
    g = fg.grad(loss)(x)
    assert not np.isfinite(np.asarray(g)).all()


def test_finite_function_and_explicit_cotangents() -> None:
    def f(x):
        return exp(x), jnp.sin(x)

    x = jnp.array([0.5, -0.5])
    report = fg.debug_nans(f, x)
    assert not report.found and "every forward value and backward gradient is finite" in str(report)
    bad = (jnp.array([1.0, jnp.nan]), jnp.ones(2))
    report = fg.debug_nans(f, x, cotangent=bad)
    assert report.phase == "cotangent" and report.upstream[0].nan == 1


def test_allow_inf_skips_masks_and_still_finds_nans() -> None:
    def masked(x, mask):
        scores = jnp.where(mask, x, -jnp.inf)
        return jax.nn.logsumexp(scores)

    x = jnp.array([1.0, 2.0, 3.0])
    mask = jnp.array([True, False, True])
    assert fg.debug_nans(masked, x, mask).phase == "forward"
    assert not fg.debug_nans(masked, x, mask, allow_inf=True).found
    all_masked = jnp.array([False, False, False])
    report = fg.debug_nans(masked, x, all_masked, allow_inf=True)
    assert report.found  # logsumexp of all -inf: -inf - -inf = NaN somewhere


def test_scope_of_a_jitted_function_is_shown() -> None:
    @jax.jit
    def inner(x):
        return log(x)

    def loss(x):
        return jnp.sum(inner(x))

    report = fg.debug_nans(loss, jnp.array([0.0, 1.0]))
    assert report.node_name == "log" and report.application.scope == ("inner",)
    assert "inside inner" in str(report)


def test_static_keywords_reach_the_function() -> None:
    def loss(x, *, shift):
        return jnp.sum(log(x - shift))

    assert fg.debug_nans(loss, jnp.array([2.0, 3.0]), shift=1.0).found is False
    assert fg.debug_nans(loss, jnp.array([2.0, 3.0]), shift=2.0).node_name == "log"


def test_traced_arguments_are_refused() -> None:
    def loss(x):
        return jnp.sum(log(x))

    with pytest.raises(TypeError, match=r"debug_nans\(loss\) needs concrete values"):
        jax.jit(lambda x: fg.debug_nans(loss, x).found)(jnp.ones(2))
