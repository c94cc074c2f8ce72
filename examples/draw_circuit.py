"""Draw the lecture's circuit: the forward value above each wire, the gradient below it.

Hand-written gates are filled boxes; the number above each wire is its value (21 at the output)
and the number below is the gradient of the output with respect to it (+10.5 on W2). A second
picture plants the classic bug, a div gate that drops its minus sign, and lets `fg.check` point
at it: the guilty gate and the wire into its wrong input are drawn in red.

Run: python examples/draw_circuit.py [OUT_DIR]   (default: the current folder)

The same first picture from the command line:
    funcgraph draw examples/lecture_circuit.py:circuit -o lecture_circuit.svg
"""

from __future__ import annotations

import sys
from pathlib import Path

from lecture_circuit import W, add, circuit, mul, reciprocal, scale, square

import funcgraph as fg


@fg.node(register=False)
def div_sign_dropped(x, y):
    return x / y


@div_sign_dropped.backward
def div_sign_dropped_backward(x, y, out, g):
    return g / y, g * x / (y * y)  # should be -g * x / y²: the sign hand derivations drop


def buggy_circuit(w0, w1, w2, w3):
    numerator = add(scale(square(w0), c=3.0), mul(w3, w1))
    return div_sign_dropped(numerator, scale(reciprocal(w2), c=8.0))


def main(out_dir: Path) -> None:
    drawing = fg.draw(circuit, *W)
    print(drawing.source)  # DOT source, with or without Graphviz
    report = fg.check(buggy_circuit, *W)
    print(report.summary())
    blamed = fg.draw(buggy_circuit, *W, report=report)
    try:
        for name, d in [("lecture_circuit.svg", drawing), ("lecture_circuit_bug.svg", blamed)]:
            print(f"wrote {d.save(out_dir / name)}")
    except fg.DrawError as err:  # no renderer: say how to get one
        print(err)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("."))
