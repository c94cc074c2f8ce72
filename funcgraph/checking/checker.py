"""`fg.check` and `fg.assert_gradients`: every oracle, contract and blame, in one report."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from funcgraph.checking.blame import blame as blame_rows
from funcgraph.checking.case import Case, Programs
from funcgraph.checking.compare import precision
from funcgraph.checking.contracts import contracts as contract_rows
from funcgraph.checking.oracles import Passes, adjoint, autodiff, finite_differences
from funcgraph.checking.report import Report, Row
from funcgraph.checking.verdicts import Tolerance, dtype_label, error_row, first_line
from funcgraph.node import Example, Node, examples_of

__all__ = ["ORACLES", "assert_gradients", "check"]

ORACLES = ("autodiff", "finite-diff", "adjoint")


def _name(f: Any) -> str:
    return getattr(f, "name", None) or getattr(f, "__name__", None) or type(f).__name__


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, (int, np.integer)):
        if seeds < 1:
            raise ValueError(f"seeds={seeds}: check at least one seed")
        return list(range(int(seeds)))
    out = [int(s) for s in seeds]
    if not out:
        raise ValueError("seeds=[]: check at least one seed")
    return out


def _cast(args: Sequence[Any], dtype: np.dtype) -> tuple[Any, ...]:
    def one(x: Any) -> Any:
        a = np.asarray(jax.device_get(x)) if not isinstance(x, (int, float)) else np.asarray(x)
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return x
        if np.issubdtype(a.dtype, np.floating) or a.dtype.name in ("bfloat16", "float16"):
            return a.astype(dtype)
        return x

    return tuple(jax.tree_util.tree_map(one, tuple(args)))


def _badness(r: Row) -> tuple[float, ...]:
    if r.oracle == "finite-diff" and r.slope is not None:
        severity = -r.slope
    else:
        severity = r.max_rel if not math.isnan(r.max_rel) else -math.inf
    return (float(not r.ok), float(not r.skipped), severity)


def _worst_over_seeds(rows: Iterable[Row]) -> list[Row]:
    """One row per (node, application, input, oracle, dtype): the worst seed's."""
    best: dict[tuple[Any, ...], Row] = {}
    for r in rows:
        key = (r.subject, r.node, r.application, r.input, r.oracle, r.dtype)
        if key not in best or _badness(r) > _badness(best[key]):
            best[key] = r
    return list(best.values())


def _hand_error_row(case: Case, passes: Passes, err: Exception) -> Row:
    """The failed row for a hand-written pass that raised: a broken contract where the core
    says which (dtype, shape, structure), `contract:jit` where the rule only runs eagerly."""
    row = error_row(case, err, passes.draw.seed)
    if row.oracle != "error":
        return row
    try:
        passes.eager()
    except Exception:  # it fails eagerly too: the plain error
        return row
    return dataclasses.replace(
        row,
        oracle="contract:jit",
        message=f"the backward runs eagerly but not under jax.jit: {row.message}",
    )


def _non_finite_row(
    f: Callable[..., Any],
    case: Case,
    call_args: Sequence[Any],
    static: Mapping[str, Any],
    dtype: Any,
) -> Row | None:
    """A failed row when the inputs or the forward's value are not finite.

    Gradients at a NaN or an infinity cannot be compared (NaN is equal to nothing, and every
    oracle agrees on garbage), so a check there would pass or fail by accident.
    """
    for i in case.diff:
        x = np.asarray(case.leaves[i])
        if not np.all(np.isfinite(x)):
            bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
            return Row(
                node=case.name,
                input=case.names[i],
                oracle="finite",
                ok=False,
                message=f"input {case.names[i]} has {bad} non-finite element(s); gradients "
                "cannot be checked there",
                dtype=dtype_label(case),
                subject=case.subject,
            )
    with precision(dtype) if dtype is not None else contextlib.nullcontext():
        out = jax.tree_util.tree_leaves(f(*call_args, **static))
    for j, o in enumerate(out):
        o = np.asarray(o)
        if np.issubdtype(o.dtype, np.inexact) and not np.all(np.isfinite(o)):
            return Row(
                node=case.name,
                input="-",
                oracle="finite",
                ok=False,
                message=f"output {j} of the forward is not finite at these inputs; "
                f"fg.debug_nans({case.name}, ...) names the node that makes it",
                dtype=dtype_label(case),
                subject=case.subject,
            )
    return None


def _check_call(
    f: Callable[..., Any],
    args: Sequence[Any],
    static: Mapping[str, Any],
    dtype: Any,
    seeds: list[int],
    oracles: Sequence[str],
    contracts: bool,
    blame: bool,
    second_order: bool,
    tol: Tolerance,
    programs: Programs,
    transforms: bool,
) -> list[Row]:
    ctx = precision(dtype) if dtype is not None else contextlib.nullcontext()
    try:
        with ctx:
            call_args = _cast(args, np.dtype(dtype)) if dtype is not None else tuple(args)
            case = Case(f, call_args, static, programs)
    except Exception as err:  # the forward itself fails at these inputs (or this dtype)
        return [
            Row(
                node=_name(f),
                input="-",
                oracle="forward",
                ok=False,
                message=f"the forward fails: {first_line(err)}",
                dtype=str(np.dtype(dtype)) if dtype is not None else "",
                subject="node" if isinstance(f, Node) else "function",
            )
        ]
    not_finite = _non_finite_row(f, case, call_args, static, dtype)
    if not_finite is not None:
        return [not_finite]
    if not case.diff or not case.out_diff:
        what = "inputs" if not case.diff else "outputs"
        return [
            Row(
                node=case.name,
                input="-",
                oracle="-",
                ok=True,
                skipped=True,
                message=f"no floating {what}: nothing to differentiate",
                dtype=dtype_label(case),
                subject=case.subject,
            )
        ]
    rows: list[Row] = []
    for n, seed in enumerate(seeds):
        passes = Passes(case, case.draw(seed))
        try:
            passes.hand()
        except Exception as err:  # the rule itself is broken (wrong dtype, shape, raises)
            rows.append(_hand_error_row(case, passes, err))
            if blame and case.subject == "function":
                rows += blame_rows(case, passes.draw, tol)
            break
        runs: list[tuple[str, Callable[[], list[Row]]]] = []
        if "autodiff" in oracles:
            runs.append(("autodiff", lambda p=passes: autodiff(case, p, tol)))
        if "adjoint" in oracles:
            runs.append(("adjoint", lambda p=passes: adjoint(case, p, tol)))
        if "finite-diff" in oracles:
            runs.append(("finite-diff", lambda p=passes: finite_differences(case, p)))
        if contracts and n == 0:
            runs.append(
                ("contract", lambda p=passes: contract_rows(case, p, tol, second_order, transforms))
            )
        if blame and case.subject == "function":
            runs.append(("blame", lambda p=passes: blame_rows(case, p.draw, tol)))
        for oracle, run in runs:
            try:
                rows += run()
            except Exception as err:  # an oracle that cannot run fails its row, not the check
                # Finite differences need the forward in float64; a forward that cannot run
                # there is no evidence against the gradient.
                skip = oracle == "finite-diff"
                rows.append(
                    Row(
                        node=case.name,
                        input="-",
                        oracle=oracle,
                        ok=skip,
                        skipped=skip,
                        seed=seed,
                        message=f"could not run: {first_line(err)}",
                        dtype=dtype_label(case),
                        subject=case.subject,
                    )
                )
    return _worst_over_seeds(rows)


def check(
    f: Callable[..., Any],
    *args: Any,
    static: Mapping[str, Any] | None = None,
    seeds: int | Sequence[int] = 3,
    dtypes: Sequence[Any] | None = None,
    second_order: bool = False,
    oracles: Sequence[str] = ORACLES,
    contracts: bool = True,
    blame: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
    example_key: int = 0,
) -> Report:
    r"""Check the hand-written gradients of a node, or of a function of nodes.

    The backward pass through the hand-written rules is compared with three oracles: autodiff
    of the reference forward (elementwise), float64 finite differences (the Taylor remainder
    must fall at order 2) and the randomized adjoint test $\langle Jv, u\rangle = \langle v,
    J^\top u\rangle$; plus contracts (zero $g$ gives zero, linear in $g$, deterministic, exact
    dtypes and shapes, same under `jit` and `vmap`). For a function, blame names the node or
    nodes whose rule is wrong (rows with `subject == "application"`).

    Tolerances come from the dtype; where float32 (or bfloat16) rounding leaves a comparison
    ambiguous, it is re-run in float64, which tells rounding (it shrinks) from a wrong rule
    (it does not).

    **Arguments:**

    - `f`: a [`funcgraph.Node`][] or any function built from nodes.
    - `args`: the positional arguments to check at. None given: the declared examples
      (`example=` on a node, `@fg.example` on a function).
    - `static`: keyword arguments passed to `f` (a node's static configuration).
    - `seeds`: how many random directions (an int), or which seeds.
    - `dtypes`: check with the floating inputs cast to each of these dtypes (default: as given).
    - `second_order`: also check the gradient of the gradient through the hand-written rules.
    - `oracles`: which of `"autodiff"`, `"finite-diff"`, `"adjoint"` to run.
    - `contracts`: run the contract checks.
    - `blame`: for a function, check each node of its graph at the true adjoint.
    - `rtol`, `atol`: fixed tolerances $|a - b| \le atol + rtol \max|b|$ replacing the
      dtype-derived ones (no float64 re-run then).
    - `example_key`: the PRNG seed the declared examples are drawn with.

    **Returns:** a [`funcgraph.Report`][]; `report.ok` tells whether everything passed.
    """
    tol = Tolerance(rtol, atol)
    seed_list = _seeds(seeds)
    unknown = set(oracles) - set(ORACLES)
    if unknown:
        raise ValueError(f"fg.check: unknown oracle(s) {sorted(unknown)}; choose from {ORACLES}")
    name = _name(f)
    if args:
        calls = [Example(tuple(args), {})]
    else:
        calls = examples_of(f, jax.random.key(example_key))
        if not calls:
            raise ValueError(
                f"fg.check({name}): no arguments were given and {name} declares no examples; "
                "pass example arguments, or declare them with example= on the node or "
                "@fg.example on the function"
            )
    rows: list[Row] = []
    programs = Programs()
    for k, call in enumerate(calls):
        merged = {**dict(call.static), **dict(static or {})}
        for d, dtype in enumerate(dtypes or [None]):
            # The jit and vmap contracts test how a rule is written, not its numbers: they run
            # for the first example and dtype only, as each costs compilations of its own.
            found = _check_call(
                f,
                call.args,
                merged,
                dtype,
                seed_list,
                oracles,
                contracts,
                blame,
                second_order,
                tol,
                programs,
                transforms=k == 0 and d == 0,
            )
            if len(calls) > 1:
                found = [dataclasses.replace(r, example=k) for r in found]
            rows += found
    return Report(tuple(rows), f"fg.check({name})")


def assert_gradients(f: Callable[..., Any], *args: Any, **options: Any) -> Report:
    """Like [`funcgraph.check`][], but raise `AssertionError` carrying the report's table when
    any check fails.

    **Returns:** the report, when everything passed.
    """
    __tracebackhide__ = True  # pytest shows the assertion, not this frame
    report = check(f, *args, **options)
    if not report.ok:
        raise AssertionError(str(report))
    return report
