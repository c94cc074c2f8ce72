r"""Comparing a hand-written gradient with an oracle, with tolerances that come from the dtype.

A comparison is first made in the inputs' own dtype. It passes outright when the difference is
within a few units of rounding of that dtype, $|a - b| \le c_1\,\varepsilon\,s$ (with $s$ the
size of the values). Otherwise the verdict is ambiguous in a low precision, and the comparison
is repeated at a second precision (float64 for float32/bfloat16/float16 inputs, float32 for
float64 inputs). A difference that comes from rounding shrinks with the precision by about
$\varepsilon_{64}/\varepsilon_{32} \approx 2\cdot10^{-9}$; a wrong gradient does not shrink at
all. So the precise run passes when

$$|a - b|_{\text{precise}} \le c_1\,\varepsilon_p\,s_p
  + c_2\,\frac{\varepsilon_p}{\varepsilon_q}\,|a - b|_{\text{imprecise}},$$

which needs no hand-tuned tolerance: $c_1$ only decides how often the second run happens, and
$c_2$ is a wide safety margin ($10^4$) against a factor of about $5\cdot10^8$.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Judgement", "Measure", "eps", "judge", "measure", "precision", "to_numpy"]

C1 = 32.0  # units of rounding within which a comparison passes outright
C2 = 1e4  # safety margin on how much a rounding difference may shrink with precision
C_FALLBACK = 1e3  # units of rounding allowed when no second precision can be run


def eps(dtype: Any) -> float:
    """Machine epsilon of a floating dtype."""
    return float(jnp.finfo(dtype).eps)


@contextlib.contextmanager
def precision(dtype: Any) -> Iterator[None]:
    """Run JAX with 64-bit types on exactly when `dtype` is float64, and restore afterwards.

    Low-precision checks run with x64 off, so that user code creating default-dtype arrays
    (`jnp.zeros(n)`) stays float32 as it would in the user's own program.
    """
    with jax.enable_x64(np.dtype(dtype) == np.float64):
        yield


def to_numpy(x: Any) -> np.ndarray:
    """A host copy of an array in float64 (exact for every floating dtype JAX uses)."""
    return np.asarray(jax.device_get(x), dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class Measure:
    """How far a hand-written value `a` is from the oracle's `b`, at one precision.

    **Attributes:**

    - `err`: $\\max|a - b|$; infinite where one is finite and the other is not.
    - `scale`: the size $s$ the error is judged against.
    - `index`: where the error is largest (`None` for scalars).
    - `a_at`, `b_at`: both values there.
    """

    err: float
    scale: float
    index: tuple[int, ...] | None
    a_at: float
    b_at: float

    @property
    def rel(self) -> float:
        """`err` relative to `scale` (0 when both are 0)."""
        if self.err == 0:
            return 0.0
        return self.err / self.scale if self.scale > 0 else math.inf


def measure(a: Any, b: Any, scale: float | None = None) -> Measure:
    """Compare two arrays of one shape elementwise (in float64 on the host).

    NaN against NaN and equal infinities count as agreeing; finite against non-finite is an
    infinite error. `scale` defaults to the largest finite magnitude of either.
    """
    a, b = to_numpy(a), to_numpy(b)
    if a.shape != b.shape:
        return Measure(math.inf, 0.0, None, math.nan, math.nan)
    if a.size == 0:
        return Measure(0.0, scale or 0.0, None, math.nan, math.nan)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - b)
        if np.isfinite(diff).all():  # then a and b are finite too: the fast path
            if scale is None:
                scale = max(float(np.abs(a).max()), float(np.abs(b).max()))
        else:
            same = (a == b) | (np.isnan(a) & np.isnan(b))
            diff = np.where(same, 0.0, np.where(np.isnan(diff), np.inf, diff))
            if scale is None:
                scale = max(float(np.abs(np.where(np.isfinite(x), x, 0.0)).max()) for x in (a, b))
    flat = int(np.argmax(diff))
    index = tuple(int(i) for i in np.unravel_index(flat, diff.shape)) if diff.ndim else None
    return Measure(
        float(diff.reshape(-1)[flat]), scale, index, float(a.flat[flat]), float(b.flat[flat])
    )


@dataclasses.dataclass(frozen=True)
class Judgement:
    """A verdict, the measure that decided it, and how it was reached."""

    ok: bool
    deciding: Measure
    how: str


def judge(
    native: Measure,
    eps_native: float,
    other: Measure | None = None,
    eps_other: float | None = None,
    why_no_other: str = "",
    rtol: float | None = None,
    atol: float | None = None,
) -> Judgement:
    """Decide a comparison, from the native-precision measure and, where that is ambiguous, a
    measure of the same comparison at a second precision (see the module docstring).

    With `rtol`/`atol` given, the comparison is the plain $|a - b| \\le atol + rtol\\,s$ in the
    native precision instead.
    """
    if rtol is not None or atol is not None:
        tol = (atol or 0.0) + (rtol or 0.0) * native.scale
        ok = native.err <= tol
        return Judgement(ok, native, f"|a-b| {native.err:.3g} {'<=' if ok else '>'} tol {tol:.3g}")
    if native.err <= C1 * eps_native * native.scale:
        return Judgement(True, native, "")
    if other is None or eps_other is None:
        ok = math.isfinite(native.err) and native.err <= C_FALLBACK * eps_native * native.scale
        note = f" ({why_no_other})" if why_no_other else ""
        return Judgement(
            ok,
            native,
            f"no second precision to settle it{note}; "
            f"|a-b| = {native.rel:.3g} of the values, allowed {C_FALLBACK:g} eps",
        )
    if eps_other < eps_native:
        precise, eps_p, imprecise, eps_q = other, eps_other, native, eps_native
    else:
        precise, eps_p, imprecise, eps_q = native, eps_native, other, eps_other
    if not math.isfinite(precise.err):
        return Judgement(False, precise, "the values disagree in finiteness at both precisions")
    if not math.isfinite(imprecise.err):
        ok = precise.err <= C_FALLBACK * eps_p * precise.scale
        return Judgement(ok, precise, "the low-precision run was not finite; judged alone")
    allowed = C1 * eps_p * precise.scale + C2 * (eps_p / eps_q) * imprecise.err
    ok = precise.err <= allowed
    shrink = precise.rel / imprecise.rel if imprecise.rel > 0 else math.nan
    if ok:
        how = f"rounding: the difference shrinks with precision ({shrink:.2g}x)"
    else:
        how = (
            f"the difference persists at higher precision ({native.rel:.3g} -> "
            f"{other.rel:.3g} of the values); rounding would shrink it {eps_p / eps_q:.1g}x"
            if eps_other < eps_native
            else f"relative difference {precise.rel:.3g} does not come from rounding"
        )
    return Judgement(ok, other if eps_other < eps_native else native, how)
