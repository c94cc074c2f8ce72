"""NaN localization: run a graph edge by edge and name the first node that goes non-finite.

A NaN in a loss is a symptom; its cause sits at one node, often far upstream (a `log` of a zero,
an overflowing `exp`, a backward rule dividing by a saved zero). `fg.debug_nans` runs the
lecture's two passes eagerly, one application at a time, checks every edge, and stops at the
first application whose forward output or backward gradient is not finite, with a summary of
what went into it.

```python
report = fg.debug_nans(loss, params, batch)
print(report)   # node 'log' (application [3], hand) produced a non-finite forward output ...
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from funcgraph.graph import Application, Edge, Graph, trace

__all__ = ["NanReport", "ValueSummary", "debug_nans", "summarize"]

Phase = Literal["input", "forward", "cotangent", "backward"]


@dataclasses.dataclass(frozen=True)
class ValueSummary:
    """What one value on an edge looks like: enough to see why a node went non-finite.

    **Attributes:**

    - `label`: where the value sits (an argument path, a node's input name, an edge).
    - `shape`, `dtype`: its type.
    - `min`, `max`: the extremes over its *finite* entries (`None` when there are none).
    - `nan`, `posinf`, `neginf`, `zeros`: how many entries are NaN, $+\\infty$, $-\\infty$, 0.
    """

    label: str
    shape: tuple[int, ...]
    dtype: np.dtype
    min: float | None
    max: float | None
    nan: int
    posinf: int
    neginf: int
    zeros: int

    @property
    def finite(self) -> bool:
        """Whether every entry is finite."""
        return self.nan == 0 and self.posinf == 0 and self.neginf == 0

    def __str__(self) -> str:
        head = f"{self.label}: {self.dtype}{list(self.shape)}"
        if self.min is None:
            parts = ["no finite entries"]
        else:
            parts = [f"min {self.min:.4g}", f"max {self.max:.4g}"]
        if self.zeros:
            parts.append(f"{self.zeros} zero(s)")
        for count, what in ((self.nan, "NaN"), (self.posinf, "+inf"), (self.neginf, "-inf")):
            if count:
                parts.append(f"{count} {what}")
        return f"{head}  {', '.join(parts)}"


def summarize(label: str, value: Any) -> ValueSummary:
    """Summarize one array value (see [`funcgraph.debug.ValueSummary`][])."""
    a = np.asarray(jax.device_get(value))
    if a.dtype == jax.dtypes.float0:
        return ValueSummary(label, a.shape, a.dtype, None, None, 0, 0, 0, 0)
    if np.issubdtype(a.dtype, np.complexfloating):
        nan = int(np.count_nonzero(np.isnan(a)))
        inf = int(np.count_nonzero(np.isinf(a)))
        mags = np.abs(a[np.isfinite(a)])
        lo, hi = (float(mags.min()), float(mags.max())) if mags.size else (None, None)
        return ValueSummary(label, a.shape, a.dtype, lo, hi, nan, inf, 0, int(np.sum(a == 0)))
    if np.issubdtype(a.dtype, np.floating) or a.dtype.name == "bfloat16":
        a64 = a.astype(np.float64)
        finite = a64[np.isfinite(a64)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (None, None)
        return ValueSummary(
            label,
            a.shape,
            a.dtype,
            lo,
            hi,
            int(np.count_nonzero(np.isnan(a64))),
            int(np.count_nonzero(a64 == np.inf)),
            int(np.count_nonzero(a64 == -np.inf)),
            int(np.count_nonzero(a64 == 0)),
        )
    lo, hi = (float(a.min()), float(a.max())) if a.size else (None, None)
    return ValueSummary(label, a.shape, a.dtype, lo, hi, 0, 0, 0, int(np.count_nonzero(a == 0)))


@dataclasses.dataclass(frozen=True)
class NanReport:
    """Where a function first produced a non-finite value, and what went into it.

    **Attributes:**

    - `function`: the name of the function examined.
    - `phase`: `"input"` (an argument is already non-finite), `"forward"` (an application's
      output), `"cotangent"` (the seeded output gradient), `"backward"` (the gradients an
      application passed to its inputs), or `None` when every value was finite.
    - `application`: the guilty application (its `name`, `kind`, `index`), for `"forward"` and
      `"backward"`.
    - `inputs`: summaries of the application's input values (for `"input"`: of the arguments).
    - `outputs`: summaries of its forward outputs (`"forward"`) or of the gradients it passed to
      its inputs (`"backward"`); the non-finite ones are the culprits.
    - `upstream`: for `"backward"`, summaries of the gradient arriving on its outputs.
    - `graph`: the traced [`funcgraph.Graph`][].
    """

    function: str
    phase: Phase | None
    application: Application | None
    inputs: tuple[ValueSummary, ...]
    outputs: tuple[ValueSummary, ...]
    upstream: tuple[ValueSummary, ...]
    graph: Graph

    @property
    def found(self) -> bool:
        """Whether a non-finite value was found."""
        return self.phase is not None

    @property
    def node_name(self) -> str | None:
        """The name of the guilty node or primitive, if any."""
        return None if self.application is None else self.application.name

    def __str__(self) -> str:
        n = len(self.graph.applications)
        if self.phase is None:
            return (
                f"debug_nans({self.function}): every forward value and backward gradient is "
                f"finite ({n} applications)."
            )
        if self.phase == "input":
            lines = [f"debug_nans({self.function}): an argument is already non-finite."]
            lines += ["  arguments:", *(f"    {s}" for s in self.inputs)]
            return "\n".join(lines)
        if self.phase == "cotangent":
            lines = [
                f"debug_nans({self.function}): the forward pass is finite, but the cotangent "
                "seeded on the output is not."
            ]
            lines += ["  cotangent:", *(f"    {s}" for s in self.upstream)]
            return "\n".join(lines)
        app = self.application
        assert app is not None
        where = f"application [{app.index}] of {n}, {app.kind}"
        if app.scope:
            where += f", inside {' / '.join(app.scope)}"
        if self.phase == "forward":
            lines = [
                f"debug_nans({self.function}): node {app.name!r} ({where}) produced a "
                "non-finite forward output from finite inputs."
                if all(s.finite for s in self.inputs)
                else f"debug_nans({self.function}): node {app.name!r} ({where}) produced a "
                "non-finite forward output; some of its inputs are constants that are not finite."
            ]
            lines += ["  inputs:", *(f"    {s}" for s in self.inputs)]
            lines += ["  outputs:", *(f"    {s}" for s in self.outputs)]
        else:
            lines = [
                f"debug_nans({self.function}): the forward pass is finite; in the backward pass "
                f"node {app.name!r} ({where}) turned a finite upstream gradient into a "
                "non-finite gradient for its inputs."
            ]
            lines += ["  inputs (forward values):", *(f"    {s}" for s in self.inputs)]
            lines += ["  upstream gradient:", *(f"    {s}" for s in self.upstream)]
            lines += ["  gradients for its inputs:", *(f"    {s}" for s in self.outputs)]
        return "\n".join(lines)


def _input_labels(app: Application) -> list[str]:
    """Names for an application's edge inputs: the node's parameter names where they line up."""
    names: list[str] = []
    if app.node is not None:
        names = app.node._positional_names(len(app.inputs))
    if len(names) != len(app.inputs):
        names = [f"input {i}" for i in range(len(app.inputs))]
    return [
        f"{name} (e{a.id})"
        for name, a in zip(names, app.inputs, strict=True)
        if isinstance(a, Edge)
    ]


def _bad(value: Any, allow_inf: bool) -> bool:
    dtype = jnp.result_type(value)
    if not jnp.issubdtype(dtype, jnp.inexact):
        return False
    a = np.asarray(jax.device_get(value))
    return bool(np.isnan(a).any() if allow_inf else not np.isfinite(a).all())


def _check_concrete(leaves: Sequence[Any], function: str) -> None:
    if any(isinstance(x, jax.core.Tracer) for x in leaves):
        raise TypeError(
            f"fg.debug_nans({function}) needs concrete values to look at, but got traced ones; "
            "call it outside jax.jit / jax.grad / jax.vmap"
        )


def debug_nans(
    f: Callable[..., Any],
    *args: Any,
    cotangent: Any = None,
    rules: Literal["hand", "reference"] = "hand",
    allow_inf: bool = False,
    **static: Any,
) -> NanReport:
    r"""Run `f`'s graph edge by edge and name the first node that produces a non-finite value.

    The forward pass runs one application at a time, in topological order; the first
    application with a non-finite output is reported. If the forward is finite, the backward
    pass runs in reverse, and the first application that turns finite upstream gradients into
    non-finite gradients for its inputs (or whose contribution makes a fanned-out edge's sum
    non-finite) is reported.

    **Arguments:**

    - `f`: a function built from nodes and plain JAX code.
    - `args`: concrete arguments (not tracers: call this outside `jax.jit`).
    - `cotangent`: the gradient seeded on the output, structured like it. Defaults to ones on
      every floating output, i.e. the gradient of $\sum$ of all outputs.
    - `rules`: `"hand"` (default) runs the hand-written backward rules; `"reference"` runs
      autodiff of each node's forward instead.
    - `allow_inf`: count only NaN as a failure (for graphs that use $-\infty$ as a mask).
    - `static`: keyword arguments passed to `f` unchanged.

    **Returns:** a [`funcgraph.NanReport`][]; `report.found` says whether anything was
    non-finite, and `str(report)` names the node and summarizes its inputs.
    """
    function = getattr(f, "__name__", None) or getattr(f, "name", None) or type(f).__name__
    path_leaves, _ = jax.tree_util.tree_flatten_with_path(tuple(args))
    _check_concrete([x for _, x in path_leaves], function)
    graph = trace(f, *args, **static)

    def report(
        phase: Phase | None,
        app: Application | None = None,
        inputs: Sequence[ValueSummary] = (),
        outputs: Sequence[ValueSummary] = (),
        upstream: Sequence[ValueSummary] = (),
    ) -> NanReport:
        return NanReport(
            function, phase, app, tuple(inputs), tuple(outputs), tuple(upstream), graph
        )

    arg_summaries = [summarize(f"args{jax.tree_util.keystr(path)}", x) for path, x in path_leaves]
    if any(_bad(x, allow_inf) for _, x in path_leaves):
        return report("input", inputs=[s for s in arg_summaries if not s.finite])

    # -- forward, one application at a time ----------------------------------------------------
    values: dict[int, Any] = dict(graph.constants)
    for edge, (_, x) in zip(graph.inputs, path_leaves, strict=True):
        values[edge.id] = x
    for app in graph.applications:
        ins = [values[e.id] for e in app.edge_inputs]
        outs = app.apply(*ins)
        for edge, o in zip(app.outputs, outs, strict=True):
            values[edge.id] = o
        if any(_bad(o, allow_inf) for o in outs):
            return report(
                "forward",
                app,
                inputs=[summarize(lbl, v) for lbl, v in zip(_input_labels(app), ins, strict=True)],
                outputs=[
                    summarize(f"output e{e.id}", o) for e, o in zip(app.outputs, outs, strict=True)
                ],
            )

    # -- backward, in reverse ------------------------------------------------------------------
    cts: dict[int, Any] = {}
    seeds = _seeds(graph, cotangent)
    seeded = [
        (o, c)
        for o, c in zip(graph.outputs, seeds, strict=True)
        if isinstance(o, Edge) and o.differentiable
    ]
    if any(_bad(c, allow_inf) for _, c in seeded):
        return report("cotangent", upstream=[summarize(f"output e{o.id}", c) for o, c in seeded])
    for o, c in seeded:
        cts[o.id] = cts[o.id] + c if o.id in cts else c
    for app in reversed(graph.applications):
        if not any(e.id in cts for e in app.outputs):
            continue
        out_cts = tuple(cts.get(e.id, _zero(e)) for e in app.outputs)
        edge_inputs = app.edge_inputs
        ins = [values[e.id] for e in edge_inputs]
        apply = app.apply if rules == "hand" else app.apply_reference
        _, vjp = jax.vjp(apply, *ins)
        in_cts = vjp(out_cts)
        bad = False
        for edge, ct in zip(edge_inputs, in_cts, strict=True):
            if not edge.differentiable:
                continue
            total = cts[edge.id] + ct if edge.id in cts else ct
            # A fanned-out edge can also go non-finite in the sum (inf - inf) or overflow there.
            bad = bad or _bad(ct, allow_inf) or _bad(total, allow_inf)
            cts[edge.id] = total
        if bad:
            labels = _input_labels(app)
            return report(
                "backward",
                app,
                inputs=[summarize(lbl, v) for lbl, v in zip(labels, ins, strict=True)],
                outputs=[
                    summarize(f"gradient for {lbl}", ct)
                    for lbl, ct in zip(labels, in_cts, strict=True)
                ],
                upstream=[
                    summarize(f"gradient on output e{e.id}", ct)
                    for e, ct in zip(app.outputs, out_cts, strict=True)
                ],
            )
    return report(None)


def _zero(edge: Edge) -> Any:
    if edge.differentiable:
        return jnp.zeros(edge.shape, edge.dtype)
    return np.zeros(edge.shape, jax.dtypes.float0)


def _seeds(graph: Graph, cotangent: Any) -> list[Any]:
    if cotangent is not None:
        return graph._seed(cotangent)
    return [
        jnp.ones(o.shape, o.dtype) if isinstance(o, Edge) and o.differentiable else None
        for o in graph.outputs
    ]
