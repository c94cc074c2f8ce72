"""Turning measures into rows: the two-precision settlement shared by every oracle.

`settle` runs a comparison in the native precision and, only where that is ambiguous, again at a
second precision (see [`funcgraph.checking.compare`][]); `row` and `error_row` build report rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from funcgraph.checking.case import Case
from funcgraph.checking.compare import C1, Judgement, Measure, eps, judge
from funcgraph.checking.report import Row
from funcgraph.errors import BackwardRuleError

__all__ = ["Tolerance", "error_row", "partner", "row", "settle"]

F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)


class Tolerance:
    """User overrides of the dtype-derived tolerances (`None`: derive them)."""

    def __init__(self, rtol: float | None = None, atol: float | None = None) -> None:
        self.rtol = rtol
        self.atol = atol

    @property
    def fixed(self) -> bool:
        """Whether the user fixed the tolerance (then no second precision is run)."""
        return self.rtol is not None or self.atol is not None


def partner(case: Case) -> np.dtype:
    """The second precision: float64 for low-precision inputs, float32 for float64 ones."""
    return F32 if case.native_precision == F64 else F64


def first_line(err: BaseException) -> str:
    """`Type: first line of the message`."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def settle(
    case: Case,
    compute: Callable[[np.dtype | None], Sequence[Measure]],
    tol: Tolerance,
) -> list[Judgement]:
    """Judge the measures `compute(None)` (native precision), consulting `compute(partner)`
    for the ambiguous ones."""
    native = list(compute(None))
    other: Sequence[Measure] | None = None
    why = ""
    clear = all(m.err <= C1 * case.eps * m.scale for m in native)
    if not clear and not tol.fixed:
        try:
            other = list(compute(partner(case)))
        except Exception as err:  # the rule may not run at the second precision
            why = f"the {partner(case)} run failed: {first_line(err)}"
    return [
        judge(
            m,
            case.eps,
            other[k] if other is not None else None,
            eps(partner(case)),
            why,
            tol.rtol,
            tol.atol,
        )
        for k, m in enumerate(native)
    ]


def dtype_label(case: Case) -> str:
    """The inputs' floating dtypes, as the report shows them."""
    names = sorted({str(d) for d in case.dtypes})
    return "/".join(names) if names else "-"


def row(
    case: Case,
    input_name: str,
    oracle: str,
    judgement: Judgement,
    seed: int | None,
    message: str = "",
) -> Row:
    """A row from a judgement of one input."""
    m = judgement.deciding
    parts = [p for p in (message if not judgement.ok else "", judgement.how) if p]
    return Row(
        node=case.name,
        input=input_name,
        oracle=oracle,
        ok=judgement.ok,
        max_abs=m.err,
        max_rel=m.rel,
        worst_index=m.index,
        message="; ".join(parts),
        dtype=dtype_label(case),
        seed=seed,
        subject=case.subject,
    )


_INPUT_IN_MESSAGE = re.compile(r"input '([^']+)'")


def error_oracle(err: BaseException) -> str:
    """The contract a backward-rule error breaks: `contract:dtype`, `contract:shape`, ..."""
    if isinstance(err, BackwardRuleError):
        text = str(err)
        for what in ("dtype", "shape", "structure"):
            if f"has {what}" in text:
                return f"contract:{what}"
        return "contract:rule"
    return "error"


def error_row(
    case: Case, err: BaseException, seed: int | None, input_name: str | None = None
) -> Row:
    """A failed row for a backward pass that raised, naming the input where the error does."""
    # A node's error names the node's own input; for a function that is not an argument name.
    found = _INPUT_IN_MESSAGE.search(str(err)) if case.subject == "node" else None
    name = input_name or (found.group(1) if found else "-")
    return Row(
        node=case.name,
        input=name,
        oracle=error_oracle(err),
        ok=False,
        message=first_line(err),
        dtype=dtype_label(case),
        seed=seed,
        subject=case.subject,
    )
