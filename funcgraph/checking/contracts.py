r"""Contract checks: properties every backward pass has, beyond matching values.

- `contract:zero-g`: a zero cotangent gives zero gradients (a rule that ignores $g$ fails).
- `contract:linear`: $J^\top(\alpha u + u') = \alpha J^\top u + J^\top u'$.
- `contract:deterministic`: two runs give bitwise the same gradients.
- `contract:dtype`, `contract:shape`: each gradient has exactly its input's dtype and shape.
- `contract:jit`: the same gradients under `jax.jit` as eagerly.
- `contract:vmap`: under `jax.vmap`, per-example gradients equal the batched ones.
- `contract:second-order` (optional): the gradient of the gradient through the hand-written
  rules matches autodiff's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from funcgraph.checking.case import Case
from funcgraph.checking.compare import Judgement, Measure, measure
from funcgraph.checking.oracles import Passes
from funcgraph.checking.report import Row
from funcgraph.checking.verdicts import Tolerance, dtype_label, error_row, first_line, row, settle

__all__ = ["contracts"]

ALPHA = -2.5  # a scale for the linearity check; any value but 0 and 1 would do
BATCH = 3  # examples in the vmap check


def contracts(
    case: Case, passes: Passes, tol: Tolerance, second_order: bool, transforms: bool = True
) -> list[Row]:
    """Every contract row for one case (on the seed of `passes`).

    `transforms=False` leaves out the comparisons under `jit` (against an op-by-op run, which
    compiles every primitive anew) and `vmap` (a program of its own): they test how the rule is
    written, not its numbers, so one dtype is enough for them.
    """
    checks: list[tuple[str, Callable[[], list[Row]]]] = [
        ("contract:dtype", lambda: _types(case, passes)),
        ("contract:zero-g", lambda: _zero_g(case, passes)),
        ("contract:linear", lambda: _linear(case, passes, tol)),
        ("contract:deterministic", lambda: _deterministic(case, passes)),
    ]
    if transforms:
        checks.append(("contract:jit", lambda: _jit(case, passes, tol)))
        checks.append(("contract:vmap", lambda: _vmap(case, passes, tol)))
    if second_order:
        checks.append(("contract:second-order", lambda: _second_order(case, passes, tol)))
    rows: list[Row] = []
    for oracle, run in checks:
        try:
            rows += run()
        except Exception as err:  # a contract that cannot even run is broken
            bad = error_row(case, err, passes.draw.seed)
            rows.append(bad if bad.oracle != "error" else _renamed(bad, oracle))
    return rows


def _renamed(r: Row, oracle: str) -> Row:
    return dataclasses.replace(r, oracle=oracle, message=f"could not run: {r.message}")


def _simple(case: Case, name: str, oracle: str, ok: bool, message: str, seed: int) -> Row:
    return Row(
        node=case.name,
        input=name,
        oracle=oracle,
        ok=ok,
        message=message,
        dtype=dtype_label(case),
        seed=seed,
        subject=case.subject,
    )


def _types(case: Case, passes: Passes) -> list[Row]:
    rows = []
    for name, i, (shape, dtype) in zip(
        case.input_names, case.diff, passes.hand_types(), strict=True
    ):
        x = case.leaves[i]
        problems = []
        if shape != x.shape:
            problems.append(f"has shape {shape}, expected {x.shape}")
        if dtype != x.dtype:
            problems.append(f"has dtype {dtype}, expected {x.dtype}")
        message = f"the gradient {' and '.join(problems)}" if problems else ""
        oracle = "contract:shape" if shape != x.shape else "contract:dtype"
        rows.append(_simple(case, name, oracle, not problems, message, passes.draw.seed))
    return rows


def _zero_g(case: Case, passes: Passes) -> list[Row]:
    zeros = [np.zeros_like(u) for u in passes.draw.u]
    grads = passes.hand_at(zeros)
    rows = []
    for name, g, usual in zip(case.input_names, grads, passes.hand(), strict=True):
        # Where the usual gradient is not finite, 0 * inf is allowed to be NaN.
        bad = (g != 0) & np.isfinite(usual)
        r = _simple(case, name, "contract:zero-g", not bad.any(), "", passes.draw.seed)
        if bad.any():
            flat = int(np.argmax(np.where(bad, np.abs(g), -1.0)))
            worst = tuple(int(i) for i in np.unravel_index(flat, g.shape)) if g.ndim else None
            largest = float(np.abs(g[bad]).max())
            r = dataclasses.replace(
                r,
                max_abs=largest,
                worst_index=worst,
                message=f"a zero upstream gradient g gave a non-zero gradient ({largest:.3g} "
                f"at {worst}); a rule must be linear in g (does it ignore g?)",
            )
        rows.append(r)
    return rows


def _second_draw(case: Case, seed: int) -> list[np.ndarray]:
    return case.draw(seed + 10_007).u


def _linear(case: Case, passes: Passes, tol: Tolerance) -> list[Row]:
    u1 = passes.draw.u
    u2 = _second_draw(case, passes.draw.seed)
    dtypes = [u.dtype for u in u1]
    # The combination is formed in float64 and rounded once to the native dtype, and the
    # right-hand side is built from the same rounded pieces it is compared with.
    combo = [
        (ALPHA * a.astype(np.float64) + b.astype(np.float64)).astype(d)
        for a, b, d in zip(u1, u2, dtypes, strict=True)
    ]

    def compute(dtype: np.dtype | None) -> list[Measure]:
        left = passes.hand_at(combo, dtype)
        g1 = passes.hand(dtype)
        g2 = passes.hand_at(u2, dtype)
        ref = [ALPHA * a + b for a, b in zip(g1, g2, strict=True)]
        scale = [
            max(float(np.abs(ALPHA * a).max(initial=0)), float(np.abs(b).max(initial=0)))
            for a, b in zip(g1, g2, strict=True)
        ]
        return [measure(a, b, s) for a, b, s in zip(left, ref, scale, strict=True)]

    message = "J^T(a u + u') differs from a J^T u + J^T u': the rule is not linear in g"
    return _rows(case, "contract:linear", settle(case, compute, tol), passes, message)


def _rows(
    case: Case, oracle: str, judgements: Sequence[Judgement], passes: Passes, message: str
) -> list[Row]:
    return [
        row(case, name, oracle, j, passes.draw.seed, message)
        for name, j in zip(case.input_names, judgements, strict=True)
    ]


def _deterministic(case: Case, passes: Passes) -> list[Row]:
    # The same compiled program twice: any difference is nondeterminism, not rounding.
    first, again = passes.hand_at(passes.draw.u), passes.hand_at(passes.draw.u)
    rows = []
    for name, a, b in zip(case.input_names, first, again, strict=True):
        m = measure(a, b)
        ok = m.err == 0
        message = "" if ok else f"two runs differ by up to {m.err:.3g} at {m.index}"
        rows.append(_simple(case, name, "contract:deterministic", ok, message, passes.draw.seed))
    return rows


def _jit(case: Case, passes: Passes, tol: Tolerance) -> list[Row]:
    def compute(dtype: np.dtype | None) -> list[Measure]:
        return [measure(a, b) for a, b in zip(passes.hand(dtype), passes.eager(dtype), strict=True)]

    message = "the gradients under jax.jit differ from the eager ones"
    return _rows(case, "contract:jit", settle(case, compute, tol), passes, message)


def _batch(case: Case, passes: Passes, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(passes.draw.seed + 20_011)
    xs = []
    for i in case.diff:
        x = case.leaves[i]
        # Small relative perturbations keep each example in the input's domain (signs kept).
        batch = np.empty((n, *x.shape), x.dtype)
        batch[0] = x
        for b in range(1, n):
            batch[b] = x * (1 + 0.01 * rng.standard_normal(x.shape))
        xs.append(batch)
    us = []
    for u in passes.draw.u:
        batch = np.empty((n, *u.shape), u.dtype)
        batch[0] = u
        for b in range(1, n):
            batch[b] = rng.standard_normal(u.shape)
        us.append(batch)
    return xs, us


def _vmap(case: Case, passes: Passes, tol: Tolerance) -> list[Row]:
    n = BATCH if case.small else 2  # large inputs: the fewest examples that make a batch
    xs, us = _batch(case, passes, n)

    def compute(dtype: np.dtype | None) -> list[Measure]:
        batched = case.vmap_vjp(xs, us, dtype)
        worst: list[Measure | None] = [None] * len(xs)
        for b in range(n):
            each = passes.hand_at([u[b] for u in us], dtype, inputs=[x[b] for x in xs])
            for k, g in enumerate(each):
                m = measure(batched[k][b], g)
                if worst[k] is None or m.err > worst[k].err:  # type: ignore[union-attr]
                    worst[k] = dataclasses.replace(m, index=(b, *(m.index or ())))
        return [m for m in worst if m is not None]

    message = "under jax.vmap the gradients differ from per-example ones"
    return _rows(case, "contract:vmap", settle(case, compute, tol), passes, message)


def _second_order(case: Case, passes: Passes, tol: Tolerance) -> list[Row]:
    def compute(dtype: np.dtype | None) -> list[Measure]:
        hand, ref = case.second_order(passes.draw.u, passes.draw.v, dtype)
        return [measure(a, b) for a, b in zip(hand, ref, strict=True)]

    try:
        judgements = settle(case, compute, tol)
    except Exception as err:
        return [
            _simple(
                case,
                name,
                "contract:second-order",
                False,
                f"cannot differentiate through the hand-written rule: {first_line(err)}",
                passes.draw.seed,
            )
            for name in case.input_names
        ]
    message = "the gradient of the gradient through the hand-written rule differs from autodiff"
    return _rows(case, "contract:second-order", judgements, passes, message)
