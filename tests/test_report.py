"""Report and Row: verdicts, culprits, the text table and the notebook view."""

from __future__ import annotations

import math

import funcgraph as fg
from funcgraph.checking.report import Report, Row


def _rows() -> tuple[Row, ...]:
    return (
        Row("loss", "w", "autodiff", False, 0.5, 1.0, (0, 1), subject="function"),
        Row("mul", "x", "autodiff", True, 1e-8, 2e-8, (3,), application=2),
        Row(
            "mul",
            "y",
            "autodiff",
            False,
            2.0,
            2.0,
            (1,),
            message="differs",
            application=2,
            hand_value=1.0,
            autodiff_value=-1.0,
            seed=4,
            dtype="float32",
        ),
        Row("tanh", "x", "finite-diff", True, slope=2.01, skipped=False),
        Row("relu", "x", "finite-diff", True, skipped=True, message="a kink lies near"),
    )


def test_ok_failures_and_culprits() -> None:
    report = Report(_rows(), "fg.check(loss)")
    assert not report.ok
    assert [r.input for r in report.failures] == ["w", "y"]
    # The function's own row says *that* it is wrong; blame rows say *where*.
    assert [(r.node, r.application, r.input) for r in report.culprits] == [("mul", 2, "y")]
    assert Report(_rows()[1:2]).ok
    assert not Report(()).ok  # nothing checked is not a pass


def test_str_is_a_table_with_explanations() -> None:
    text = str(Report(_rows(), "fg.check(loss)"))
    lines = text.splitlines()
    assert lines[0] == "fg.check(loss): 2 of 5 checks FAILED; culprits: mul[2].y"
    assert lines[1].split() == [
        "node",
        "input",
        "dtype",
        "oracle",
        "max_abs",
        "max_rel",
        "worst",
        "slope",
    ]
    assert "FAIL  mul[2]" in text and "(1)" in text and "2.01" in text
    assert "mul[2], input 'y', autodiff, float32, seed 4: differs" in text
    assert "hand-written 1, autodiff -1" in text
    assert "skipped:" in text and "a kink lies near" in text


def test_html_view_escapes_and_marks_failures() -> None:
    rows = (Row("<b>", "x&y", "autodiff", False, math.inf, math.inf),)
    html = Report(rows, "t")._repr_html_()
    assert "<table" in html and "&lt;b&gt;" in html and "x&amp;y" in html
    assert "#fdd" in html  # failed rows are red


def test_merge_and_summary() -> None:
    a, b = Report(_rows()[1:2], "a"), Report(_rows()[3:], "b")
    merged = a.merge(b, title="both")
    assert merged.ok and len(merged.rows) == 3
    assert merged.summary() == "both: all 3 checks passed, 1 skipped"
    assert "nothing was checked" in Report((), "x").summary()
    assert repr(merged).startswith("<funcgraph.Report")


def test_report_and_row_are_public() -> None:
    assert fg.Report is Report and fg.Row is Row
    assert {"check", "assert_gradients", "Report", "Row"} <= set(fg.__all__)
