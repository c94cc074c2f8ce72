"""The result of a gradient check: one row per node, input and oracle, as a table.

A [`funcgraph.Report`][] is what `fg.check` returns and what `fg.assert_gradients`, the pytest
plugin and `funcgraph check` print. Drawings colour nodes by its rows (`Row.application`).
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Iterable, Sequence
from typing import Literal

__all__ = ["Report", "Row"]

Subject = Literal["node", "function", "application"]


@dataclasses.dataclass(frozen=True)
class Row:
    r"""One verdict: how one input's hand-written gradient compares with one oracle.

    **Attributes:**

    - `node`: the node's name (or the checked function's, for whole-function rows).
    - `input`: the input's name, e.g. `'x'`, `'w'` or `"params['w']"`.
    - `oracle`: `'autodiff'` (autodiff of the reference forward), `'finite-diff'` (float64
      central differences with a Taylor-rate verdict), `'adjoint'` (the randomized dot-product
      test $\langle J v, u\rangle = \langle v, J^\top u\rangle$) or `'contract:<what>'`.
    - `ok`: whether the row passed.
    - `max_abs`: the largest absolute difference from the oracle.
    - `max_rel`: `max_abs` relative to the size of the oracle's value
      ($\max|a - b| / \max|b|$ over the array; for scalar oracles $|a - b| / |b|$).
    - `worst_index`: where `max_abs` occurs (`None` for scalar oracles).
    - `slope`: the Taylor remainder's order of decay (finite differences only): near 2 for a
      correct gradient, near 1 for a wrong one.
    - `message`: how the verdict was reached, or what is wrong.
    - `application`: for rows from blame in a graph, the application's index in the traced
      graph (see [`funcgraph.Application`][]); `None` otherwise.
    - `hand_value`, `autodiff_value`: for blame rows, both values at `worst_index`.
    - `dtype`: the floating dtype the inputs had.
    - `seed`: the seed of the worst case, when several seeds were checked.
    - `skipped`: the oracle could not run here (the reason is in `message`); counts as passed.
    - `subject`: `'node'` (a node checked on its own), `'function'` (a whole function) or
      `'application'` (one node inside a function's graph, from blame).
    - `example`: which declared example call the row is about, when several were checked.
    """

    node: str
    input: str
    oracle: str
    ok: bool
    max_abs: float = math.nan
    max_rel: float = math.nan
    worst_index: tuple[int, ...] | None = None
    slope: float | None = None
    message: str = ""
    application: int | None = None
    hand_value: float | None = None
    autodiff_value: float | None = None
    dtype: str = ""
    seed: int | None = None
    skipped: bool = False
    subject: Subject = "node"
    example: int | None = None

    @property
    def status(self) -> str:
        """`'ok'`, `'FAIL'` or `'skip'`."""
        if not self.ok:
            return "FAIL"
        return "skip" if self.skipped else "ok"

    @property
    def where(self) -> str:
        """The node, with its application index for blame rows (`mul[3]`) and the example
        call when several were checked (`softmax#1`)."""
        where = self.node if self.application is None else f"{self.node}[{self.application}]"
        return where if self.example is None else f"{where}#{self.example}"


def _num(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.3g}"


def _index(ix: tuple[int, ...] | None) -> str:
    return "-" if ix is None else "(" + ", ".join(str(i) for i in ix) + ")"


_COLUMNS = ("", "node", "input", "dtype", "oracle", "max_abs", "max_rel", "worst", "slope")


def _cells(row: Row) -> tuple[str, ...]:
    return (
        row.status,
        row.where,
        row.input,
        row.dtype or "-",
        row.oracle,
        _num(row.max_abs),
        _num(row.max_rel),
        _index(row.worst_index),
        _num(row.slope),
    )


def _explain(row: Row) -> str:
    text = f"{row.where}, input {row.input!r}, {row.oracle}"
    if row.dtype:
        text += f", {row.dtype}"
    if row.seed is not None:
        text += f", seed {row.seed}"
    text += f": {row.message}" if row.message else ""
    if row.hand_value is not None and row.autodiff_value is not None:
        text += (
            f" (at {_index(row.worst_index)}: hand-written {row.hand_value:.6g}, "
            f"autodiff {row.autodiff_value:.6g})"
        )
    return text


@dataclasses.dataclass(frozen=True)
class Report:
    """All verdicts of a gradient check, with a table for terminals and notebooks.

    **Attributes:**

    - `rows`: the [`funcgraph.Row`][]s, in the order they were checked.
    - `title`: what was checked.
    """

    rows: tuple[Row, ...] = ()
    title: str = "gradient check"

    @property
    def ok(self) -> bool:
        """Whether every row passed (an empty report passes nothing and is not ok)."""
        return bool(self.rows) and all(r.ok for r in self.rows)

    @property
    def failures(self) -> tuple[Row, ...]:
        """The rows that failed."""
        return tuple(r for r in self.rows if not r.ok)

    @property
    def culprits(self) -> tuple[Row, ...]:
        """The failed rows that name a guilty node: blame rows in graphs, and rows of nodes
        checked on their own (a whole function's rows only say *that* it is wrong)."""
        return tuple(r for r in self.failures if r.subject != "function")

    def merge(self, *others: Report, title: str | None = None) -> Report:
        """This report's rows followed by the others'."""
        rows = list(self.rows)
        for other in others:
            rows.extend(other.rows)
        return Report(tuple(rows), title or self.title)

    @staticmethod
    def combine(reports: Iterable[Report], title: str) -> Report:
        """One report holding the rows of several."""
        return Report(tuple(r for rep in reports for r in rep.rows), title)

    def table(self, rows: Sequence[Row] | None = None) -> str:
        """The rows as a plain-text table."""
        rows = self.rows if rows is None else rows
        body = [_COLUMNS, *(_cells(r) for r in rows)]
        widths = [max(len(line[i]) for line in body) for i in range(len(_COLUMNS))]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
            for line in body
        )

    def summary(self) -> str:
        """One line: passed or failed, and how many rows."""
        n, bad = len(self.rows), len(self.failures)
        if not n:
            return f"{self.title}: nothing was checked"
        if not bad:
            skipped = sum(r.skipped for r in self.rows)
            extra = f", {skipped} skipped" if skipped else ""
            return f"{self.title}: all {n} checks passed{extra}"
        culprits = sorted({f"{r.where}.{r.input}" for r in self.culprits})
        named = f"; culprits: {', '.join(culprits)}" if culprits else ""
        return f"{self.title}: {bad} of {n} checks FAILED{named}"

    def __str__(self) -> str:
        parts = [self.summary(), self.table()]
        if self.failures:
            parts.append("failures:")
            parts += [f"  {_explain(r)}" for r in self.failures]
        notes = [r for r in self.rows if r.ok and r.skipped]
        if notes:
            parts.append("skipped:")
            parts += [f"  {_explain(r)}" for r in notes]
        return "\n".join(parts)

    def __repr__(self) -> str:
        return f"<funcgraph.Report {self.summary()!r}>"

    def _repr_html_(self) -> str:
        """The table for notebooks; failed rows in red, their explanations on hover."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in _COLUMNS)
        lines = []
        for r in self.rows:
            colour = "#fdd" if not r.ok else ("#eee" if r.skipped else "#efe")
            cells = "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r))
            tip = html.escape(_explain(r), quote=True)
            lines.append(f'<tr style="background:{colour}" title="{tip}">{cells}</tr>')
        fails = "".join(f"<li>{html.escape(_explain(r))}</li>" for r in self.failures)
        return (
            f"<div><p><b>{html.escape(self.summary())}</b></p>"
            f'<table style="font-family:monospace"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(lines)}</tbody></table>"
            + (f"<ul>{fails}</ul>" if fails else "")
            + "</div>"
        )
