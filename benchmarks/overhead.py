r"""Graph overhead: what funcgraph's own graph costs over JAX's native machinery.

A chain of `n` small hand-written nodes with fan-out, $h \leftarrow \tanh(h)\,h + x$ repeated and
summed at the end, is

- traced with `fg.trace` against `jax.make_jaxpr` (both run the Python function once; `fg.trace`
  also builds the `Graph`),
- differentiated with the jitted `graph.backward` (funcgraph's interpreter, unrolled under jit)
  against jitted `jax.grad` of the same function (JAX's transpose of the same custom_vjp rules):
  compile time and run time separately.

The ratios are what the graph interpreter adds; the rules themselves are the same on both sides.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

import funcgraph as fg
from benchmarks.timing import interleaved, paired_ratio
from funcgraph.nodes.activations import tanh
from funcgraph.nodes.gates import add, mul
from funcgraph.nodes.reductions import sum as node_sum

__all__ = ["chain", "run"]

_PER_BLOCK = 3  # tanh, mul, add


def chain(x: jax.Array, *, applications: int) -> jax.Array:
    r"""$h_0 = x$, $h_{k+1} = \tanh(h_k)\, h_k + x$, then $\sum h$: `applications` hand nodes.

    Every $h_k$ fans out to two nodes and $x$ to every block, so the backward pass also sums
    gradients along fanned-out edges, as a real network's does.
    """
    blocks = (applications - 1) // _PER_BLOCK
    h = x
    for _ in range(blocks):
        h = add(mul(tanh(h), h), x)
    # Pad with cheap nodes so the count is exact whatever `applications` is.
    for _ in range(applications - 1 - _PER_BLOCK * blocks):
        h = tanh(h)
    return node_sum(h)


def run(
    *,
    applications: int,
    width: int,
    repeats: int,
    compile_repeats: int,
    min_repeat_s: float = 0.02,
) -> dict[str, Any]:
    """Measure tracing, compiling and running the backward pass of `chain`.

    **Arguments:**

    - `applications`: nodes in the graph (1000 in the full run).
    - `width`: length of the vector on every edge.
    - `repeats`: interleaved repeats for tracing and run time.
    - `compile_repeats`: interleaved repeats for compile time (each compiles afresh).
    - `min_repeat_s`: the shortest timed repeat of the compiled backward passes.

    **Returns:** the section of the results: the graph's size and one row per measurement.
    """
    x = jnp.linspace(-1.0, 1.0, width, dtype=jnp.float32)

    def f(x: jax.Array) -> jax.Array:
        return chain(x, applications=applications)

    graph = fg.trace(f, x)
    n_hand = len(graph.hand_applications)

    def fg_backward(x: jax.Array) -> jax.Array:
        return graph.input_gradients(graph.backward(x))[0]

    jax_grad = jax.grad(f)
    rows = []

    # A fresh function object per call on both sides: make_jaxpr caches traces by function.
    t = interleaved(
        {
            "funcgraph": lambda: fg.trace(lambda x: f(x), x),
            "jax": lambda: jax.make_jaxpr(lambda x: f(x))(x),
        },
        repeats=repeats,
        max_inner=1,
    )
    rows.append(_row("trace", "fg.trace", "jax.make_jaxpr", t))

    # A fresh function object per compile, so no tracing or lowering cache is reused.
    compiled: dict[str, Any] = {}

    def compile_with(name: str, fn: Any) -> Any:
        compiled[name] = jax.jit(lambda x: fn(x)).lower(x).compile()
        return compiled[name]

    t = interleaved(
        {
            "funcgraph": lambda: compile_with("funcgraph", fg_backward),
            "jax": lambda: compile_with("jax", jax_grad),
        },
        repeats=compile_repeats,
        max_inner=1,
        warmup=False,
    )
    rows.append(_row("backward: compile", "jit(graph.backward)", "jit(jax.grad)", t))

    fg_jit, jax_jit = compiled["funcgraph"], compiled["jax"]
    got, want = fg_jit(x), jax_jit(x)
    # The comparison only means something if both compute the same gradient.
    agree = bool(jnp.allclose(got, want, rtol=1e-4, atol=1e-4))
    t = interleaved(
        {"funcgraph": lambda: fg_jit(x), "jax": lambda: jax_jit(x)},
        repeats=repeats,
        min_repeat_s=min_repeat_s,
        max_inner=100_000,
    )
    rows.append(_row("backward: run", "jit(graph.backward)", "jit(jax.grad)", t))
    return {
        "applications": n_hand,
        "width": width,
        "gradients_agree": agree,
        "rows": rows,
    }


def _row(what: str, ours: str, theirs: str, t: dict[str, Any]) -> dict[str, Any]:
    return {
        "what": what,
        "funcgraph": ours,
        "baseline": theirs,
        "funcgraph_s": t["funcgraph"].median,
        "baseline_s": t["jax"].median,
        "ratio": paired_ratio(t["funcgraph"], t["jax"]).median,
        "ratio_quartiles": list(paired_ratio(t["funcgraph"], t["jax"])[1:]),
        "cpu_ratio": paired_ratio(t["funcgraph"], t["jax"], cpu=True).median,
        "cpu_ratio_quartiles": list(paired_ratio(t["funcgraph"], t["jax"], cpu=True)[1:]),
        "repeats": len(t["funcgraph"].samples),
        "inner": t["funcgraph"].inner,
    }
