"""Safety under threads and reentrancy: the registry, node caches, and nested tracing."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcgraph as fg

# The module, not the `fg.node` decorator that shadows its name on the package.
node_module = importlib.import_module("funcgraph.node")


@fg.node(register=False)
def mul(x, y):
    return x * y


@mul.backward
def _mul_backward(x, y, out, g):
    return g * y, g * x


@fg.node(register=False)
def tanh(x):
    return jnp.tanh(x)


@tanh.backward
def _tanh_backward(x, out, g):
    return g * (1 - out * out)


@pytest.fixture
def scratch_registry() -> Iterator[list[str]]:
    """Names registered by a test, removed again so other tests see the registry unchanged."""
    added: list[str] = []
    yield added
    with node_module._REGISTRY_LOCK:
        for name in added:
            node_module._REGISTRY.pop(name, None)


def _run_in_threads(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run fn(0..n-1) on n threads that all start together; re-raise the first failure."""
    barrier = threading.Barrier(n)

    def start(i: int) -> Any:
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(start, range(n)))


def test_concurrent_registration_and_enumeration(scratch_registry: list[str]) -> None:
    threads, per_thread = 8, 25

    def register(t: int) -> list[str]:
        names = []
        for i in range(per_thread):
            if t % 2 == 0:
                # Readers iterate a snapshot while writers register: no "changed size" errors.
                assert all(isinstance(n, fg.Node) for n in fg.registry().values())

            def fwd(x):
                return 2.0 * x

            fwd.__module__ = "tests.test_threading_scratch"
            n = fg.node(fwd, name=f"scratch_{t}_{i}")
            names.append(n.qualname)
        return names

    results = _run_in_threads(threads, register)
    expected = {q for names in results for q in names}
    scratch_registry.extend(expected)
    assert len(expected) == threads * per_thread
    assert expected <= set(fg.registry())
    assert fg.get_node("scratch_3_7").name == "scratch_3_7"


def test_concurrent_calls_build_each_custom_vjp_once_and_agree() -> None:
    shapes = [(2,), (3,), (2, 3), (4, 1)]
    cache_size_before = len(mul._cache)

    def work(i: int) -> None:
        shape = shapes[i % len(shapes)]
        x = jnp.linspace(-1.0, 1.0, int(np.prod(shape))).reshape(shape) + i
        y = jnp.full(shape, 0.5 + i)

        def f(x, y):
            return jnp.sum(tanh(mul(x, y)))

        for _ in range(2):
            expected = jax.grad(fg.reference(f), argnums=(0, 1))(x, y)
            for got in (jax.grad(f, argnums=(0, 1))(x, y), fg.grad(f, argnums=(0, 1))(x, y)):
                for a, b in zip(got, expected, strict=True):
                    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)

    _run_in_threads(6, work)
    # One custom_vjp per input signature, however many threads asked for it at once.
    assert len(mul._cache) - cache_size_before <= len(shapes)


def test_attaching_a_rule_while_other_threads_call_the_node() -> None:
    @fg.node(register=False)
    def square(x):
        return x * x

    @square.backward
    def _(x, out, g):
        return 2.0 * x * g

    x = jnp.arange(1.0, 4.0)

    def work(i: int) -> None:
        for _ in range(5):
            if i == 0:
                square.backward(lambda x, out, g: g * 2.0 * x)  # same rule, re-attached
            g = jax.grad(lambda x: jnp.sum(square(x)))(x)
            np.testing.assert_allclose(g, 2.0 * x)

    _run_in_threads(4, work)


def test_concurrent_tracing_and_value_and_grad() -> None:
    def loss(w, x):
        return jnp.sum(tanh(mul(x, w)))

    def work(i: int) -> tuple[int, float]:
        w = jnp.full((3,), 0.1 * (i + 1))
        x = jnp.arange(3.0)
        graph = fg.trace(loss, w, x)
        value, g = fg.value_and_grad(loss)(w, x)
        np.testing.assert_allclose(g, jax.grad(fg.reference(loss))(w, x), rtol=1e-6)
        return len(graph.applications), float(value)

    results = _run_in_threads(6, work)
    assert len({n for n, _ in results}) == 1
    assert len({v for _, v in results}) == 6


# -- reentrancy ----------------------------------------------------------------------------------


def test_trace_inside_a_traced_function() -> None:
    """fg.grad traces its function; calling it inside a function being traced nests fg.trace."""

    def inner(w, x):
        return jnp.sum(tanh(mul(w, x)))

    def outer(w, x):
        g = fg.grad(inner)(w, x)  # an fg.trace inside the outer fg.trace
        return jnp.sum(mul(g, g))

    w, x = jnp.array([0.3, -0.2, 0.5]), jnp.array([1.0, 2.0, -1.0])
    graph = fg.trace(outer, w, x)
    assert "tanh" in {a.name for a in graph.applications}
    np.testing.assert_allclose(graph(w, x), outer(w, x), rtol=1e-6)
    np.testing.assert_allclose(fg.grad(outer)(w, x), jax.grad(fg.reference(outer))(w, x), rtol=1e-5)


def test_jit_inside_a_trace_and_trace_inside_jit() -> None:
    @jax.jit
    def block(x):
        return tanh(mul(x, x))

    def f(x):
        return jnp.sum(block(x) + block(2.0 * x))

    x = jnp.array([0.1, -0.4, 0.7])
    graph = fg.trace(f, x)
    assert any(a.scope == ("block",) for a in graph.applications)
    expected = jax.grad(fg.reference(f))(x)
    np.testing.assert_allclose(fg.grad(f)(x), expected, rtol=1e-6)
    # The graph's own backward pass, traced inside jit, compiled as one program.
    value, g = jax.jit(fg.value_and_grad(f))(x)
    np.testing.assert_allclose(g, expected, rtol=1e-6)
    np.testing.assert_allclose(value, f(x), rtol=1e-6)


def test_lumped_node_inside_jit_grad_and_vmap() -> None:
    """A lump's backward traces its function while JAX is itself tracing: nested tracing."""

    def neuron(w, x):
        return tanh(mul(w, x))

    lumped = fg.lump(neuron)

    def loss(w, x):
        return jnp.sum(lumped(w, x))

    w = jnp.array([0.5, -1.0])
    xs = jnp.array([[1.0, 2.0], [0.5, -0.5], [2.0, 0.0]])
    per_example = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(w, xs)
    expected = jax.vmap(jax.grad(fg.reference(loss)), in_axes=(None, 0))(w, xs)
    np.testing.assert_allclose(per_example, expected, rtol=1e-6)
