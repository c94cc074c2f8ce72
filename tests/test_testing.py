"""funcgraph.testing: per-node checks, registry cases, hypothesis-drawn shapes."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import pytest

import funcgraph as fg
from funcgraph.testing import (
    NodeCase,
    check_node,
    example_functions,
    registry_cases,
    select_nodes,
    shape_strategy,
)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    """A private, empty registry for the nodes a test defines."""
    fresh: dict = {}
    monkeypatch.setattr(sys.modules["funcgraph.node"], "_REGISTRY", fresh)
    return fresh


def _cube() -> fg.Node:
    @fg.node(example=lambda key, shape=(3,): (jax.random.normal(key, shape),))
    def cube(x):
        return x**3

    @cube.backward
    def _cube_backward(x, out, g):
        return 3 * x * x * g

    return cube


def _wrong_sin() -> fg.Node:
    @fg.node(
        example=[
            lambda key: (jax.random.normal(key, (4,)),),
            lambda key: fg.Example((jax.random.normal(key, (2, 2)),), {"a": 2.0}),
        ]
    )
    def wrong_sin(x, *, a: float = 1.0):
        return jnp.sin(a * x)

    @wrong_sin.backward
    def _wrong_sin_backward(x, out, g, *, a: float = 1.0):
        return -a * jnp.cos(a * x) * g

    return wrong_sin


def test_select_nodes_by_glob(registry: dict) -> None:
    cube, wrong = _cube(), _wrong_sin()
    assert select_nodes() == [cube, wrong]  # funcgraph's own library is left out by default
    assert select_nodes(["*.wrong_*"]) == [wrong]
    assert select_nodes(["nothing.*"]) == []


def test_registry_cases_one_per_example_and_one_for_drawn_shapes(registry: dict) -> None:
    cube, wrong = _cube(), _wrong_sin()
    cases = registry_cases(dtypes=("float32",), seeds=1, shapes=2)
    assert [(c.node, c.example, c.shapes) for c in cases] == [
        (cube, 0, 0),
        (cube, 0, 2),  # its example takes shape=: also checked at drawn shapes
        (wrong, 0, 0),
        (wrong, 1, 0),
    ]
    assert cases[1].id.endswith("cube[0]-shapes") and str(cases[0]) == cases[0].id
    assert registry_cases(shapes=0, seeds=1) and len(registry_cases(shapes=0)) == 3


def test_cases_run_and_fail_with_the_table(registry: dict) -> None:
    _cube(), _wrong_sin()
    good, drawn, bad, bad_static = registry_cases(dtypes=("float32", "float64"), seeds=1, shapes=2)
    report = good.run()
    assert report.ok and {r.dtype for r in report.rows} == {"float32", "float64"}
    drawn_report = drawn.check()
    assert drawn_report.ok and "drawn shapes" in drawn_report.title
    with pytest.raises(AssertionError, match="wrong_sin") as info:
        bad.run()
    assert "FAIL" in str(info.value) and "autodiff" in str(info.value)
    assert not bad_static.check().ok


def test_check_node_draws_an_example_and_takes_options(registry: dict) -> None:
    cube = _cube()
    report = check_node(cube, seeds=1, shape=(2, 5), oracles=("autodiff",), contracts=False)
    assert report.ok and len(report.rows) == 1
    assert "at shape (2, 5)" in report.title
    with pytest.raises(ValueError, match="declares no examples"):
        check_node(fg.node(lambda x: x, register=False))


def test_shape_strategy_only_for_shape_taking_examples() -> None:
    from hypothesis import given, settings

    (fn,) = example_functions(_cube())
    strategy = shape_strategy(fn)

    @settings(max_examples=10, database=None)
    @given(strategy)
    def each(shape: tuple[int, ...]) -> None:
        assert len(shape) == 1 and 1 <= shape[0] <= 5

    each()
    assert shape_strategy(lambda key: ()) is None
    assert NodeCase.__doc__
