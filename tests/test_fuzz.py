"""Fuzzing: random graphs of library nodes, differentiated four ways that must agree.

For every drawn graph (see `funcgraph.strategies.graphs`), in float64:

- the graph's own backward pass (`fg.value_and_grad`, hand-written rules edge by edge),
- `jax.grad` of the same function (JAX running the hand-written rules through `custom_vjp`),
- `jax.grad(fg.reference(f))` (plain autodiff of every node's pure forward), and
- central finite differences along a random direction

give the same gradient, and the forward agrees with the strategy's own NumPy evaluation.

CI runs `FUNCGRAPH_FUZZ_EXAMPLES` examples (default 200, derandomized so every run draws the same
graphs); set it higher for a longer, randomized search, e.g. `FUNCGRAPH_FUZZ_EXAMPLES=5000`.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import funcgraph as fg  # noqa: E402
from funcgraph.strategies import GRAPH_OPS, RandomGraph, graphs  # noqa: E402

_DEFAULT_EXAMPLES = 200
EXAMPLES = int(os.environ.get("FUNCGRAPH_FUZZ_EXAMPLES", _DEFAULT_EXAMPLES))
LONG = "FUNCGRAPH_FUZZ_EXAMPLES" in os.environ

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # The default run is reproducible; a long run explores new graphs every time.
    derandomize=not LONG,
    database=None if not LONG else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_H = 1e-5  # float64 central differences: truncation ~h^2, round-off ~1e-16/h, both ~1e-10
_FD_TOL = 1e-6  # relative to 1 + |g| |d|; the observed worst case is below 1e-9
_RTOL = 1e-7  # hand rules against autodiff, both float64, differ only in rounding


def _describe(g: RandomGraph) -> None:
    """Record what the example exercises (shown with --hypothesis-show-statistics)."""
    reads = [i for s in g.steps for i in s.operands]
    if len(reads) != len(set(reads)):
        event("fan-out")
    for s in g.steps:
        if len(s.operands) == 2 and s.op != "matmul":
            if g.steps[s.operands[0]].shape != g.steps[s.operands[1]].shape:
                event("broadcasting")
                break


def _allclose(actual, expected, scale: float, what: str, g: RandomGraph) -> None:
    np.testing.assert_allclose(
        np.asarray(actual),
        np.asarray(expected),
        rtol=_RTOL,
        atol=_RTOL * scale,
        err_msg=f"{what} disagree on\n{g!r}",
    )


@FUZZ
@given(graph=graphs(), seed=st.integers(0, 2**32 - 1))
def test_backward_jax_grad_autodiff_and_finite_differences_agree(
    graph: RandomGraph, seed: int
) -> None:
    _describe(graph)
    with jax.enable_x64(True):
        xs = tuple(jnp.asarray(x) for x in graph.inputs)
        argnums = tuple(range(len(xs)))

        value, by_graph = fg.value_and_grad(graph, argnums=argnums)(*xs)
        by_jax = jax.grad(graph, argnums=argnums)(*xs)
        by_autodiff = jax.grad(fg.reference(graph), argnums=argnums)(*xs)

        np.testing.assert_allclose(float(value), graph.value, rtol=1e-10, atol=1e-10)
        scale = 1.0 + max(float(np.max(np.abs(np.asarray(g)))) for g in by_autodiff)
        for a, b, c in zip(by_graph, by_jax, by_autodiff, strict=True):
            assert a.dtype == b.dtype == jnp.float64
            _allclose(a, c, scale, "graph.backward and autodiff of the reference", graph)
            _allclose(b, c, scale, "jax.grad (hand rules) and autodiff of the reference", graph)

        rng = np.random.default_rng(seed)
        direction = [rng.standard_normal(x.shape) for x in graph.inputs]
        plus = graph(
            *(jnp.asarray(x + _H * d) for x, d in zip(graph.inputs, direction, strict=True))
        )
        minus = graph(
            *(jnp.asarray(x - _H * d) for x, d in zip(graph.inputs, direction, strict=True))
        )
        finite_difference = (float(plus) - float(minus)) / (2 * _H)
        norm_d = np.sqrt(sum(float(np.sum(d * d)) for d in direction))
        for name, grads in (("graph.backward", by_graph), ("jax.grad", by_jax)):
            directional = sum(
                float(np.sum(np.asarray(g) * d)) for g, d in zip(grads, direction, strict=True)
            )
            norm_g = np.sqrt(sum(float(np.sum(np.asarray(g) ** 2)) for g in grads))
            err = abs(directional - finite_difference) / (1.0 + norm_g * norm_d)
            assert err < _FD_TOL, (
                f"{name} gives directional derivative {directional!r}, finite differences "
                f"{finite_difference!r} (relative error {err:.2e}) on\n{graph!r}"
            )


# -- the strategy itself ---------------------------------------------------------------------------


def _draw_many(n: int = 150) -> list[RandomGraph]:
    drawn: list[RandomGraph] = []

    @settings(max_examples=n, database=None, derandomize=True, deadline=None)
    @given(graphs())
    def collect(g: RandomGraph) -> None:
        drawn.append(g)

    collect()
    return drawn


@pytest.fixture(scope="module")
def drawn() -> list[RandomGraph]:
    return _draw_many()


def test_strategy_draws_fan_out_broadcasting_and_every_node(drawn: list[RandomGraph]) -> None:
    def fans_out(g: RandomGraph) -> bool:
        reads = [i for s in g.steps for i in s.operands]
        return len(reads) != len(set(reads))

    def broadcasts(g: RandomGraph) -> bool:
        return any(
            len(s.operands) == 2
            and s.op != "matmul"
            and g.steps[s.operands[0]].shape != g.steps[s.operands[1]].shape
            for s in g.steps
        )

    assert sum(map(fans_out, drawn)) > len(drawn) // 2
    assert sum(map(broadcasts, drawn)) > len(drawn) // 10
    used = {s.op for g in drawn for s in g.steps}
    assert used >= set(GRAPH_OPS), f"never drawn: {set(GRAPH_OPS) - used}"
    sizes = [g.num_applications for g in drawn]
    assert min(sizes) >= 3 and max(sizes) <= 10


def test_strategy_keeps_nodes_in_their_safe_domains(drawn: list[RandomGraph]) -> None:
    for g in drawn:
        values: list[np.ndarray] = []
        inputs = iter(g.inputs)
        for s in g.steps:
            if s.op == "input":
                values.append(next(inputs))
                continue
            args = [values[i] for i in s.operands]
            if s.op == "log":
                assert np.all(args[0] >= 0.2)
            if s.op in ("div", "reciprocal"):
                assert np.all(np.abs(args[-1]) >= 0.3)
            if s.op in ("maximum", "relu"):
                assert np.all(
                    np.abs(np.subtract(args[0], args[-1] if len(args) == 2 else 0)) >= 0.05
                )
            if s.op == "exp":
                assert np.all(args[0] <= 3.0)
            values.append(np.asarray(GRAPH_OPS[s.op].forward(*args, **dict(s.static))))
            assert values[-1].shape == s.shape
            assert np.all(np.abs(values[-1]) <= 20.0)
        assert np.isclose(sum(float(np.sum(values[i])) for i in g.sinks), g.value)


def test_a_wrong_rule_is_caught_by_the_fuzz_comparison() -> None:
    """The comparison above can fail: a node with a wrong rule disagrees with autodiff."""

    @fg.node(register=False)
    def bad_tanh(x):
        return jnp.tanh(x)

    @bad_tanh.backward
    def _(x, out, g):
        return g * (1 - out)  # should be 1 - out**2

    def f(x):
        return fg.nodes.sum(bad_tanh(fg.nodes.mul(x, x)))

    x = jnp.array([0.3, -0.7, 1.1])
    assert not np.allclose(fg.grad(f)(x), jax.grad(fg.reference(f))(x), rtol=_RTOL)
