r"""Blame: which node of a graph has the wrong backward rule.

The adjoint on every edge is taken from the graph's backward pass by autodiff of each node's
forward (`Graph.backward(rules="reference")`), which is the true adjoint. Then each hand
application is run backward twice on that same output adjoint: through its hand-written rule
and through autodiff of its forward. A node whose output adjoint is right but whose input
adjoints disagree is a culprit; since every node is handed the *true* output adjoint, each wrong
node is found on its own, even several, even where edges fan out and gradients add.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import numpy as np

from funcgraph.checking.case import Case, Draw, leaf_names, positional_names
from funcgraph.checking.compare import Measure, measure, precision, to_numpy
from funcgraph.checking.report import Row
from funcgraph.checking.verdicts import Tolerance, dtype_label, error_oracle, first_line, settle
from funcgraph.graph import Application, Edge, Graph, trace
from funcgraph.node import node_of_equation

__all__ = ["blame"]


@dataclasses.dataclass(frozen=True)
class _Item:
    app: Application
    position: int  # in app.inputs
    edge_position: int  # in app.edge_inputs
    name: str


def _input_names(app: Application) -> list[str]:
    assert app.node is not None
    call = node_of_equation(app.equation)
    treedef = getattr(call, "treedef", None)
    if treedef is not None and treedef.num_leaves == len(app.inputs):
        return leaf_names(app.node.reference, treedef)
    return positional_names(app.node.reference, len(app.inputs))


def _zero(edge: Edge) -> Any:
    if edge.differentiable:
        return np.zeros(edge.shape, edge.dtype)
    return np.zeros(edge.shape, jax.dtypes.float0)


def _run(graph: Graph, args: Any, cotangent: Any, catch: bool) -> dict[int, Any]:
    values = graph.forward(*args)
    adjoint = graph.backward(*args, cotangent=cotangent, rules="reference", values=values)
    local: dict[int, Any] = {}
    for app in graph.hand_applications:
        ins = [values[e.id] for e in app.edge_inputs]
        out_ct = tuple(adjoint[e.id] if e.differentiable else _zero(e) for e in app.outputs)
        keep = [e.differentiable for e in app.edge_inputs]
        _, pull = jax.vjp(app.apply_reference, *ins)
        ref = [g if k else None for g, k in zip(pull(out_ct), keep, strict=True)]
        try:
            _, pull = jax.vjp(app.apply, *ins)
            hand: Any = [g if k else None for g, k in zip(pull(out_ct), keep, strict=True)]
        except Exception as err:  # charged to this node (only when running eagerly)
            if not catch:
                raise
            hand = err
        local[app.index] = (hand, ref)
    return local


def _local(case: Case, draw: Draw, dtype: np.dtype | None) -> tuple[Graph, dict[int, Any]]:
    """For each hand application: its input adjoints through the hand-written rule (or the
    error it raised) and through autodiff, given the true output adjoint.

    All applications run in one compiled program; if that fails (a rule raises), they run one
    by one so that the error is charged to its own node.
    """
    with precision(case.precision_of(dtype)):
        args = case.args(dtype)
        graph = case.programs.remember(
            case.structure,
            ("graph", str(case.precision_of(dtype)), case.shapes),
            lambda: trace(case.f, *args, **case.static),
        )
        run = case.programs.get(
            case.structure,
            ("blame", str(case.precision_of(dtype)), case.shapes),
            lambda: functools.partial(_run, graph, catch=False),
            small=case.small,
        )
        u = iter(case.cast(draw.u, dtype))
        cot_leaves = [
            next(u) if j in case.out_diff else np.zeros(o.shape, o.dtype)
            for j, o in enumerate(case.out_leaves)
        ]
        cotangent = jax.tree_util.tree_unflatten(graph.out_tree, cot_leaves)
        try:
            local = run(args, cotangent)
        except Exception:  # some rule raises: find which, one application at a time
            local = _run(graph, args, cotangent, catch=True)

        def host(xs: Any) -> Any:
            if isinstance(xs, Exception):
                return xs
            return [None if x is None else to_numpy(x) for x in xs]

        return graph, {i: (host(h), host(r)) for i, (h, r) in local.items()}


def blame(case: Case, draw: Draw, tol: Tolerance) -> list[Row]:
    """One row per hand application and differentiable input: does its rule agree with
    autodiff of its forward, at the true adjoint of its output?"""
    label = dtype_label(case)

    def base(app: Application, name: str, ok: bool, message: str, **fields: Any) -> Row:
        return Row(
            node=app.name,
            input=name,
            oracle=fields.pop("oracle", "autodiff"),
            ok=ok,
            message=message,
            application=app.index,
            dtype=label,
            seed=draw.seed,
            subject="application",
            **fields,
        )

    try:
        graph, native = _local(case, draw, None)
    except Exception as err:  # the reference pass itself fails: there is nothing to blame with
        return [
            Row(
                node=case.name,
                input="-",
                oracle="blame",
                ok=True,
                skipped=True,
                dtype=label,
                seed=draw.seed,
                subject="function",
                message=f"blame could not run: {first_line(err)}",
            )
        ]
    rows: list[Row] = []
    items: list[_Item] = []
    for app in graph.hand_applications:
        names = _input_names(app)
        edges = [(p, a) for p, a in enumerate(app.inputs) if isinstance(a, Edge)]
        hand, _ = native[app.index]
        if isinstance(hand, Exception):
            found = [n for n in names if f"input {n!r}" in str(hand)]
            rows.append(
                base(
                    app,
                    found[0] if found else "-",
                    False,
                    f"its backward rule raised {first_line(hand)}",
                    oracle=error_oracle(hand),
                )
            )
            continue
        for k, (p, e) in enumerate(edges):
            if e.differentiable:
                items.append(_Item(app, p, k, names[p] if p < len(names) else f"input {p}"))

    def measures(local: dict[int, Any]) -> list[Measure]:
        out = []
        for it in items:
            hand, ref = local[it.app.index]
            if isinstance(hand, Exception):
                raise hand
            out.append(measure(hand[it.edge_position], ref[it.edge_position]))
        return out

    def compute(dtype: np.dtype | None) -> list[Measure]:
        if dtype is None:
            return measures(native)
        other, local = _local(case, draw, dtype)
        if [(a.index, a.name) for a in other.hand_applications] != [
            (a.index, a.name) for a in graph.hand_applications
        ]:
            raise ValueError(f"the graph traced at {dtype} has other nodes")
        return measures(local)

    for it, j in zip(items, settle(case, compute, tol) if items else [], strict=True):
        m = j.deciding
        message = (
            f"given the true adjoint of its output, its hand-written rule passes "
            f"{m.a_at:.6g} to {it.name!r} at {m.index} where autodiff of its forward passes "
            f"{m.b_at:.6g}"
            if not j.ok
            else ""
        )
        message = "; ".join(p for p in (message, j.how) if p)
        rows.append(
            base(
                it.app,
                it.name,
                j.ok,
                message,
                max_abs=m.err,
                max_rel=m.rel,
                worst_index=m.index,
                hand_value=m.a_at,
                autodiff_value=m.b_at,
            )
        )
    rows.sort(key=lambda r: r.application if r.application is not None else -1)
    return rows
