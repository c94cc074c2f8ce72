"""Make the tutorial's figures: docs/images/*.svg, drawn by `fg.draw` from the tutorial's code.

Run from the repository root (needs `pip install -e '.[draw]'`):

    python scripts/make_docs_figures.py            # writes docs/images/
    python scripts/make_docs_figures.py --out DIR  # somewhere else

Each figure's function is the one the tutorial page defines, so the numbers in the pictures are
the numbers in the text. The SVGs are rendered by `graphviz-pure` when it is installed (it writes
the same bytes on every platform), otherwise by a system `dot`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

import funcgraph as fg
from funcgraph.draw import renderer
from funcgraph.nodes import add, div, exp, matmul, maximum, mul, reciprocal, scale, square

# -- tutorials 1-3 and 7: the lecture's circuit, and a wrong rule in it ----------------------------


def f(w0, w1, w2, w3):
    numerator = add(scale(square(w0), c=3.0), mul(w3, w1))
    denominator = scale(reciprocal(w2), c=8.0)
    return div(numerator, denominator)


W = tuple(jnp.float32(v) for v in (4.0, 6.0, 2.0, 6.0))


@fg.node(register=False)
def div_sign_dropped(x, y):
    """The lecture's div gate with the minus sign of $\\partial(x/y)/\\partial y$ dropped."""
    return x / y


@div_sign_dropped.backward
def _div_sign_dropped_backward(x, y, out, g):
    return g / y, g * x / (y * y)  # should be -g * x / y²


def f_buggy(w0, w1, w2, w3):
    numerator = add(scale(square(w0), c=3.0), mul(w3, w1))
    denominator = scale(reciprocal(w2), c=8.0)
    return div_sign_dropped(numerator, denominator)


f_buggy.__name__ = "f"  # tutorial 7 calls it f, and the picture is titled by the name


# -- tutorial 4: the gates -----------------------------------------------------------------------


def gates(x, y, z, w):
    return scale(add(mul(x, y), maximum(z, w)), c=2.0)


GATES = tuple(jnp.float32(v) for v in (3.0, -4.0, 2.0, -1.0))

# -- tutorial 5: the sigmoid neuron --------------------------------------------------------------


def sigmoid_gates(z):
    return reciprocal(add(exp(scale(z, c=-1.0)), jnp.float32(1.0)))


def neuron(w0, x0, w1, x1, w2, activation=sigmoid_gates):
    z = add(add(mul(w0, x0), mul(w1, x1)), w2)
    return activation(z)


NEURON = tuple(jnp.float32(v) for v in (2.0, -1.0, -3.0, -2.0, -3.0))

# -- tutorial 6: a vector graph ------------------------------------------------------------------


def loss(W, X):
    return fg.nodes.sum(square(matmul(W, X)))


def vector_args() -> tuple[jax.Array, jax.Array]:
    kw, kx = jax.random.split(jax.random.key(0))
    return jax.random.normal(kw, (5, 10)), jax.random.normal(kx, (10, 3))


# -- the figures ---------------------------------------------------------------------------------


def figures() -> dict[str, Callable[[], fg.Drawing]]:
    """Each figure's file name and how to draw it."""
    out: dict[str, Callable[[], Any]] = {
        "lecture_circuit.svg": lambda: fg.draw(f, *W, values=False),
        "lecture_circuit_forward.svg": lambda: fg.draw(f, *W, gradients=False),
        "lecture_circuit_backward.svg": lambda: fg.draw(f, *W),
        "gates.svg": lambda: fg.draw(gates, *GATES),
        "sigmoid_gates.svg": lambda: fg.draw(neuron, *NEURON),
        "sigmoid_fused.svg": lambda: fg.draw(
            neuron, *NEURON, static={"activation": fg.nodes.sigmoid}
        ),
        "vector_graph.svg": lambda: fg.draw(loss, *vector_args()),
    }
    check = getattr(fg, "check", None)
    if callable(check):
        out["wrong_gradient.svg"] = lambda: fg.draw(
            f_buggy, *W, report=check(f_buggy, *W, seeds=1)
        )
    else:
        print("fg.check is not available: wrong_gradient.svg not made", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="output folder")
    args = parser.parse_args(argv)
    # The same bytes on every machine: prefer graphviz-pure over whatever `dot` is installed.
    if "FUNCGRAPH_DOT" not in os.environ:
        pure = shutil.which("graphviz-pure") or shutil.which(
            "graphviz-pure", path=str(Path(sys.executable).parent)
        )
        if pure:
            os.environ["FUNCGRAPH_DOT"] = pure
    print(f"rendering with {renderer()}")
    for name, make in figures().items():
        path = make().save(args.out / name)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
