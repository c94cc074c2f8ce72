r"""The three oracles a hand-written backward pass is compared against.

1. **Autodiff** of the reference forward: $J^\top u$ by `jax.vjp` of the pure forward, for a
   random cotangent $u$. Exact up to rounding, so it is compared elementwise with tolerances
   from the dtype (and a float64 re-run where float32 rounding leaves it ambiguous).
2. **Finite differences** in float64 with a Taylor-rate verdict. For
   $\varphi(x) = \langle u, f(x)\rangle$ and a random direction $h$, the remainder
   $r(\varepsilon) = |\varphi(x + \varepsilon h) - \varphi(x) - \varepsilon\langle\nabla\varphi,
   h\rangle|$ is $O(\varepsilon^2)$ when the gradient is right and $O(\varepsilon)$ when it is
   wrong, so its order of decay as $\varepsilon$ halves (the *slope*, near 2 or near 1) is the
   verdict; no tolerance is involved.
3. **Adjoint** (dot-product) test: $\langle J v, u\rangle = \langle v, J^\top u\rangle$ with
   $Jv$ from forward-mode autodiff of the reference and $J^\top u$ from the hand-written rule.
   Two scalars per direction, so a node with millions of elements is checked in a handful of
   passes without ever forming a Jacobian.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from funcgraph.checking.case import F64, Bundle, Case, Draw, Pass
from funcgraph.checking.compare import Measure, eps, measure
from funcgraph.checking.report import Row
from funcgraph.checking.verdicts import Tolerance, dtype_label, first_line, row, settle

__all__ = ["Passes", "adjoint", "autodiff", "finite_differences"]

# Finite differences: steps eps0 * 2^-k for k < N_STEPS, starting at 10% of the input's size.
N_STEPS = 16
FIRST_STEP = 0.1
# A remainder counts when it stands this far above the rounding in evaluating phi.
ABOVE_ROUNDING = 1e3
MIN_SLOPE = 1.5  # halfway between the correct order (2) and the wrong one (1)


class Passes:
    """The passes of one seed at each precision, run on first use.

    All of a precision's passes are compiled as one program (`Case.bundle`); if that fails, each
    pass is run on its own, so that an error is charged to the pass that raised it. Errors are
    remembered and raised again on every use.
    """

    def __init__(self, case: Case, draw: Draw) -> None:
        self.case = case
        self.draw = draw
        self._memo: dict[tuple[Any, ...], tuple[bool, Any]] = {}

    def _get(self, key: tuple[Any, ...], fn: Callable[[], Any]) -> Any:
        if key not in self._memo:
            try:
                self._memo[key] = (True, fn())
            except Exception as err:  # re-raised below, to whichever oracle asks
                self._memo[key] = (False, err)
        ok, value = self._memo[key]
        if not ok:
            raise value
        return value

    def bundle(self, dtype: np.dtype | None = None) -> Bundle | None:
        """All passes at `dtype` from one compiled program, or `None` if it does not run."""
        try:
            return self._get(
                ("bundle", str(dtype)), lambda: self.case.bundle(self.draw.u, self.draw.v, dtype)
            )
        except Exception:  # fall back to the passes one by one
            return None

    def _vjp(self, which: Pass, dtype: np.dtype | None) -> Any:
        return self._get((which, str(dtype)), lambda: self.case.vjp(which, self.draw.u, dtype))

    def hand(self, dtype: np.dtype | None = None) -> list[np.ndarray]:
        r"""$J^\top u$ through the hand-written rules (float64 host arrays)."""
        b = self.bundle(dtype)
        return b.hand if b is not None else self._vjp("hand", dtype)[0]

    def hand_types(self) -> list[tuple[tuple[int, ...], np.dtype]]:
        """Shapes and dtypes of the hand-written gradients, as the native run returned them."""
        b = self.bundle(None)
        return b.types if b is not None else self._vjp("hand", None)[1]

    def reference(self, dtype: np.dtype | None = None) -> list[np.ndarray]:
        r"""$J^\top u$ by autodiff of the reference forward."""
        b = self.bundle(dtype)
        return b.reference if b is not None else self._vjp("reference", dtype)[0]

    def jvp(self, k: int, dtype: np.dtype | None = None) -> list[np.ndarray]:
        """$J v$ along input `k` by forward-mode autodiff of the reference."""
        b = self.bundle(dtype)
        if b is not None:
            return b.jvps[k]
        return self._get(("jvp", k, str(dtype)), lambda: self.case.jvp(k, self.draw.v[k], dtype))

    def hand_at(
        self,
        u: list[np.ndarray],
        dtype: np.dtype | None = None,
        inputs: list[np.ndarray] | None = None,
    ) -> list[np.ndarray]:
        r"""$J^\top u$ through the hand-written rules for another cotangent `u` (and inputs).

        Small cases reuse the compiled bundle (no compilation of its own); large ones run the
        hand-written pass alone, not to compute and hold the bundle's other passes too.
        """
        if self.case.small and self.bundle(dtype) is not None:
            return self.case.bundle(u, self.draw.v, dtype, inputs).hand
        return self.case.vjp("hand", u, dtype, inputs)[0]

    def eager(self, dtype: np.dtype | None = None) -> list[np.ndarray]:
        r"""$J^\top u$ through the hand-written rules, op by op (no `jax.jit`)."""
        return self._get(("eager", str(dtype)), lambda: self.case.eager_vjp(self.draw.u, dtype))


def autodiff(case: Case, passes: Passes, tol: Tolerance) -> list[Row]:
    """Elementwise comparison of $J^\\top u$: hand-written rules against autodiff."""

    def compute(dtype: np.dtype | None) -> list[Measure]:
        hand, ref = passes.hand(dtype), passes.reference(dtype)
        return [measure(a, b) for a, b in zip(hand, ref, strict=True)]

    try:
        passes.reference()
    except Exception as err:  # no oracle to compare with: say so, do not blame the rule
        return [
            _skipped(
                case,
                passes,
                name,
                "autodiff",
                f"autodiff of the reference forward fails: {first_line(err)}",
            )
            for name in case.input_names
        ]
    rows = []
    for name, j in zip(case.input_names, settle(case, compute, tol), strict=True):
        m = j.deciding
        message = (
            f"the hand-written gradient differs from autodiff of the reference forward by "
            f"{m.rel:.3g} of its size"
        )
        r = row(case, name, "autodiff", j, passes.draw.seed, message)
        rows.append(_with_values(r, m))
    return rows


def _skipped(case: Case, passes: Passes, name: str, oracle: str, message: str) -> Row:
    return Row(
        node=case.name,
        input=name,
        oracle=oracle,
        ok=True,
        skipped=True,
        message=message,
        dtype=dtype_label(case),
        seed=passes.draw.seed,
        subject=case.subject,
    )


def _with_values(r: Row, m: Measure) -> Row:
    return dataclasses.replace(r, hand_value=m.a_at, autodiff_value=m.b_at)


def adjoint(case: Case, passes: Passes, tol: Tolerance) -> list[Row]:
    """The dot-product test $\\langle J v, u\\rangle = \\langle v, J^\\top u\\rangle$ per input."""
    u = [x.astype(np.float64) for x in passes.draw.u]
    try:
        for k in range(len(case.diff)):
            passes.jvp(k)
    except Exception as err:  # no forward-mode autodiff of the reference: no oracle
        return [
            _skipped(
                case,
                passes,
                name,
                "adjoint",
                f"forward-mode autodiff of the reference fails: {first_line(err)}",
            )
            for name in case.input_names
        ]

    def compute(dtype: np.dtype | None) -> list[Measure]:
        hand = passes.hand(dtype)
        out = []
        for k, g in enumerate(hand):
            v = passes.draw.v[k].astype(np.float64)
            right = v * g
            lefts = [a * b for a, b in zip(passes.jvp(k, dtype), u, strict=True)]
            lhs = sum(float(t.sum()) for t in lefts)
            # Rounding in J^T u and J v adds up like a random walk over the terms.
            scale = math.sqrt(float((right**2).sum())) + math.sqrt(
                sum(float((t**2).sum()) for t in lefts)
            )
            out.append(measure(np.array(float(right.sum())), np.array(lhs), scale=scale))
        return out

    rows = []
    for name, j in zip(case.input_names, settle(case, compute, tol), strict=True):
        m = j.deciding
        message = (
            f"<v, J^T u> = {m.a_at:.8g} (hand-written) but <J v, u> = {m.b_at:.8g} "
            "(forward-mode autodiff of the reference)"
        )
        rows.append(row(case, name, "adjoint", j, passes.draw.seed, message))
    return rows


def finite_differences(case: Case, passes: Passes) -> list[Row]:
    """The Taylor test in float64, along one random direction per input.

    Every input's steps are evaluated by one compiled program (`Case.phi`).
    """
    plans = [_plan(case, passes, k) for k in range(len(case.diff))]
    directions = [
        p.h if isinstance(p, _Plan) else np.zeros(case.leaves[i].shape)
        for p, i in zip(plans, case.diff, strict=True)
    ]
    # Each row: the steps forward, the same steps backward, and 0 (the unmoved input).
    steps = np.stack(
        [
            np.concatenate([p.steps, -p.steps, [0.0]])
            if isinstance(p, _Plan)
            else np.zeros(2 * N_STEPS + 1)
            for p in plans
        ]
    )
    values, sizes = case.phi(directions, steps, passes.draw.u)
    return [
        p if isinstance(p, Row) else _verdict(case, passes, k, p, values[k], sizes[k])
        for k, p in enumerate(plans)
    ]


class _Plan:
    """The direction and steps of one input's Taylor test."""

    def __init__(self, h: np.ndarray, steps: np.ndarray) -> None:
        self.h = h
        self.steps = steps


def _fd_row(case: Case, passes: Passes, k: int, ok: bool, message: str, **fields: Any) -> Row:
    return Row(
        node=case.name,
        input=case.input_names[k],
        oracle="finite-diff",
        ok=ok,
        message=message,
        dtype=dtype_label(case),
        seed=passes.draw.seed,
        subject=case.subject,
        **fields,
    )


def _plan(case: Case, passes: Passes, k: int) -> _Plan | Row:
    x = case.leaves[case.diff[k]].astype(np.float64)
    z = passes.draw.h[k]
    if x.size == 0 or not np.any(z):
        return _fd_row(case, passes, k, True, "empty input", skipped=True)
    size = float(np.sqrt(np.mean(x**2))) or 1.0
    h = z / float(np.max(np.abs(z))) * size
    limit, who = case.kink_step(k, h)
    first = min(FIRST_STEP, 0.25 * limit)
    if first < 1e-7:
        return _fd_row(
            case,
            passes,
            k,
            True,
            f"a kink of {who} lies within {limit * size:.2g} of the input; finite differences "
            "cannot step there",
            skipped=True,
        )
    return _Plan(h, first * 2.0 ** -np.arange(N_STEPS))


def _verdict(
    case: Case, passes: Passes, k: int, plan: _Plan, phis: np.ndarray, sizes: np.ndarray
) -> Row:
    steps, h = plan.steps, plan.h
    try:
        grad = passes.hand(F64)[k]
        eps_g = eps(np.float64)
    except Exception:  # the rule may not run in float64; use the native one
        grad = passes.hand(None)[k]
        eps_g = case.eps
    d = float((grad * h).sum())
    d_size = float(np.abs(grad * h).sum())
    plus, minus, phi0 = phis[:N_STEPS], phis[N_STEPS:-1], phis[-1]
    rounding = eps(np.float64) * (sizes[-1] + sizes[:N_STEPS]) + eps_g * steps * d_size
    with np.errstate(invalid="ignore", over="ignore"):
        remainder = np.abs(plus - phi0 - steps * d)
        central = (plus - minus) / (2 * steps)
        errors = np.abs(central - d)
        usable = np.isfinite(remainder) & (remainder > ABOVE_ROUNDING * rounding)
    fields: dict[str, Any] = {}
    best = None
    if np.any(np.isfinite(errors)):
        best = int(np.argmin(np.where(np.isfinite(errors), errors, np.inf)))
        err = float(errors[best])
        size = max(abs(float(central[best])), abs(d))
        fields = {
            "max_abs": err,
            "max_rel": err / size if size > 0 else (0.0 if err == 0 else math.inf),
        }
    if not np.any(np.isfinite(remainder)):
        return _fd_row(
            case,
            passes,
            k,
            True,
            "the function is not finite near the input",
            skipped=True,
            **fields,
        )
    idx = np.flatnonzero(usable)
    if len(idx) < 3 or steps[idx[0]] / steps[idx[-1]] < 4:
        return _fd_row(
            case,
            passes,
            k,
            True,
            "the Taylor remainder is at rounding level: the function is linear along the "
            "direction to float64 precision, and the gradient agrees",
            **fields,
        )
    sel = idx[-4:]
    slope = float(np.polyfit(np.log2(steps[sel]), np.log2(remainder[sel]), 1)[0])
    if slope >= MIN_SLOPE:
        return _fd_row(case, passes, k, True, "", slope=slope, **fields)
    c = float(central[best]) if best is not None else math.nan
    return _fd_row(
        case,
        passes,
        k,
        False,
        f"the Taylor remainder falls at order {slope:.2f} as the step halves (a correct "
        f"gradient gives 2): along a random direction, central differences give {c:.8g} "
        f"but the hand-written gradient gives {d:.8g}",
        slope=slope,
        **fields,
    )
