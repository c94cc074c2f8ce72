r"""Hypothesis strategies for random graphs built from the node library.

[`funcgraph.strategies.graphs`][] draws small random programs: a few inputs of random shapes
(with size-1 axes and missing leading axes, so binary gates broadcast), then 3–10 applications of
library nodes whose operands are any earlier values (so edges fan out). The scalar result is the
sum of every value nothing else consumed, so every application reaches the output.

Each drawn graph is *well-posed for finite differences*: while drawing, every value is also
computed in float64 NumPy, and a node is only applied where its domain is safe there: `log` on
values $\ge 0.2$, `div`/`reciprocal` on denominators with $|y| \ge 0.3$, `exp` on values
$\le 3$, `maximum` and `relu` only where the two sides are at least 0.05 apart (away from their
kinks), and no value grows past 20 in magnitude.

This module needs `hypothesis` (the `test` extra). Nothing else in funcgraph imports it.

```python
from hypothesis import given
from funcgraph.strategies import graphs

@given(graphs())
def test_backward(g):
    loss = g(*g.inputs)
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "funcgraph.strategies needs hypothesis: pip install 'funcgraph[test]'"
    ) from err

__all__ = ["GRAPH_OPS", "RandomGraph", "Step", "graphs"]

_MAX_ABS = 20.0  # no value may grow past this: keeps finite differences well conditioned
_KINK_GAP = 0.05  # distance kept from the kinks of maximum and relu
_MAX_SIZE = 48  # elements per value
_MAX_RANK = 3


@dataclasses.dataclass(frozen=True)
class Step:
    """One line of a random program: an input, or a node applied to earlier values.

    **Attributes:**

    - `op`: `"input"` or the name of a node in `funcgraph.nodes`.
    - `operands`: indices of the earlier steps it reads.
    - `static`: its keyword-only configuration, as sorted `(name, value)` pairs.
    - `shape`: the shape of its value.
    """

    op: str
    operands: tuple[int, ...]
    static: tuple[tuple[str, Any], ...]
    shape: tuple[int, ...]


@dataclasses.dataclass(frozen=True, eq=False)
class RandomGraph:
    """A random program of library nodes, with the example inputs it was drawn for.

    Call it as `g(*g.inputs)` (any float dtype; cast the inputs first) to run it through the
    nodes; the result is a scalar.

    **Attributes:**

    - `steps`: the program, in order; `"input"` steps take the arguments in turn.
    - `inputs`: float64 NumPy values of the arguments, one per input step.
    - `value`: the float64 NumPy value of the result at `inputs`.
    """

    steps: tuple[Step, ...]
    inputs: tuple[np.ndarray, ...]
    value: float

    @property
    def sinks(self) -> tuple[int, ...]:
        """The steps whose values nothing else reads; their sums make the result."""
        used = {i for s in self.steps for i in s.operands}
        return tuple(i for i in range(len(self.steps)) if i not in used)

    @property
    def num_applications(self) -> int:
        """How many nodes the program applies (inputs and the final sums not counted)."""
        return sum(s.op != "input" for s in self.steps)

    def __call__(self, *args: Any) -> Any:
        from funcgraph import nodes

        it = iter(args)
        values: list[Any] = []
        for step in self.steps:
            if step.op == "input":
                values.append(next(it))
            else:
                fn = getattr(nodes, step.op)
                values.append(fn(*(values[i] for i in step.operands), **dict(step.static)))
        out = None
        for i in self.sinks:
            s = nodes.sum(values[i])
            out = s if out is None else nodes.add(out, s)
        return out

    def __repr__(self) -> str:
        lines = ["RandomGraph:"]
        for i, s in enumerate(self.steps):
            if s.op == "input":
                rhs = f"input {list(s.shape)}"
            else:
                args = [f"v{j}" for j in s.operands] + [f"{k}={v!r}" for k, v in s.static]
                rhs = f"{s.op}({', '.join(args)})  # {list(s.shape)}"
            lines.append(f"  v{i} = {rhs}")
        lines.append(f"  return {' + '.join(f'sum(v{i})' for i in self.sinks)}")
        return "\n".join(lines)


# -- the node table: a float64 NumPy forward and a domain check per node ------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logsumexp(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    y = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return y if keepdims else np.squeeze(y, axis=axis)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _always(*_: np.ndarray) -> bool:
    return True


@dataclasses.dataclass(frozen=True)
class _Op:
    arity: int
    forward: Callable[..., np.ndarray]
    safe: Callable[..., bool] = _always
    statics: Callable[[int], Any] | None = None  # rank -> strategy of static dicts
    new_weight: bool = False  # matmul: the second operand may be a fresh input


def _axes(rank: int) -> Any:
    """Strategy of `{"axis": ..., "keepdims": ...}` for a reduction of a rank-`rank` value."""
    choices: list[Any] = [*range(rank), None, *reversed(range(rank))]
    return st.fixed_dictionaries({"axis": st.sampled_from(choices), "keepdims": st.booleans()})


def _last_axes(rank: int) -> Any:
    return st.fixed_dictionaries({"axis": st.sampled_from([*range(rank), -1])})


GRAPH_OPS: dict[str, _Op] = {
    "add": _Op(2, np.add),
    "mul": _Op(2, np.multiply),
    "maximum": _Op(2, np.maximum, lambda x, y: bool(np.all(np.abs(x - y) >= _KINK_GAP))),
    "div": _Op(2, np.divide, lambda x, y: bool(np.all(np.abs(y) >= 0.3))),
    "reciprocal": _Op(1, lambda x: 1.0 / x, lambda x: bool(np.all(np.abs(x) >= 0.3))),
    "scale": _Op(
        1,
        lambda x, *, c: c * x,
        statics=lambda rank: st.fixed_dictionaries({"c": st.sampled_from([-1.5, -0.5, 0.5, 2.0])}),
    ),
    "square": _Op(1, np.square),
    "exp": _Op(1, np.exp, lambda x: bool(np.all(x <= 3.0))),
    "log": _Op(1, np.log, lambda x: bool(np.all(x >= 0.2))),
    "sigmoid": _Op(1, _sigmoid),
    "tanh": _Op(1, np.tanh),
    "relu": _Op(1, lambda x: np.maximum(x, 0.0), lambda x: bool(np.all(np.abs(x) >= _KINK_GAP))),
    "softplus": _Op(1, lambda x: np.logaddexp(x, 0.0)),
    "sum": _Op(
        1, lambda x, *, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims), statics=_axes
    ),
    "mean": _Op(
        1, lambda x, *, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims), statics=_axes
    ),
    "logsumexp": _Op(1, lambda x, *, axis, keepdims: _logsumexp(x, axis, keepdims), statics=_axes),
    "softmax": _Op(1, lambda x, *, axis: _softmax(x, axis), statics=_last_axes),
    "matmul": _Op(2, np.matmul, new_weight=True),
}
"""The nodes random graphs are built from: arity, float64 forward, and where each is safe."""


def _fits(value: np.ndarray) -> bool:
    return (
        value.ndim <= _MAX_RANK
        and value.size <= _MAX_SIZE
        and bool(np.all(np.isfinite(value)))
        and bool(np.all(np.abs(value) <= _MAX_ABS))
    )


def _try(op: _Op, operands: Sequence[np.ndarray], static: dict[str, Any]) -> np.ndarray | None:
    """The op's float64 value on these operands, or None where it is not safe to apply."""
    try:
        with np.errstate(all="ignore"):
            # Shapes that do not fit (broadcasting, matmul, an axis) raise ValueError here.
            value = np.asarray(op.forward(*operands, **static), dtype=np.float64)
            if op.arity == 2 and not op.new_weight:
                operands = np.broadcast_arrays(*operands)
            if not op.safe(*operands):
                return None
    except ValueError:
        return None
    return value if _fits(value) else None


def _array(shape: tuple[int, ...], positive: bool) -> Any:
    lo, hi = (0.3, 2.0) if positive else (-2.0, 2.0)
    return hnp.arrays(
        np.float64,
        shape,
        elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False),
    )


@st.composite
def graphs(
    draw: Any,
    *,
    min_applications: int = 3,
    max_applications: int = 10,
    max_inputs: int = 3,
    ops: Sequence[str] | None = None,
) -> RandomGraph:
    """A strategy of random graphs of library nodes (see the module docstring).

    **Arguments:**

    - `min_applications`, `max_applications`: how many nodes the program applies.
    - `max_inputs`: how many inputs it starts from (matmul may add weight inputs).
    - `ops`: names of nodes from `GRAPH_OPS` to draw from (default: all of them).

    **Returns:** a strategy of [`funcgraph.strategies.RandomGraph`][].
    """
    names = sorted(GRAPH_OPS) if ops is None else list(ops)
    # Inputs are (2, 3) with some axes dropped or set to 1: a non-square base catches transposed
    # gradients, and few distinct shapes keep JAX's per-shape compilation caches warm, which
    # makes eager examples cheap.
    base = [2, 3]
    steps: list[Step] = []
    values: list[np.ndarray] = []
    inputs: list[np.ndarray] = []

    def add_input(shape: tuple[int, ...]) -> int:
        x = draw(_array(shape, positive=draw(st.booleans())))
        steps.append(Step("input", (), (), shape))
        values.append(x)
        inputs.append(x)
        return len(steps) - 1

    for _ in range(draw(st.integers(1, max_inputs))):
        # A suffix of the base shape with some axes set to 1: inputs broadcast against each other.
        # hypothesis favours the ends of a list: scalars (rank 0) are kept in the middle.
        rank = draw(st.sampled_from([2, 1, 0, 1, 2]))
        dims = base[len(base) - rank :]
        ones = draw(st.lists(st.booleans(), min_size=rank, max_size=rank))
        add_input(tuple(1 if one else d for d, one in zip(dims, ones, strict=True)))

    n_apps = draw(st.integers(min_applications, max_applications))
    for _ in range(n_apps):
        name = draw(st.sampled_from(names))
        op = GRAPH_OPS[name]
        # Most recent values first: hypothesis favours early choices, and this makes deep chains
        # rather than many nodes hanging off the first input.
        recent = list(reversed(range(len(values))))
        if op.arity == 1:
            candidates = [(i,) for i in recent]
        else:
            candidates = [(i, j) for i in recent for j in recent if i != j] or [(0, 0)]
            candidates.insert(len(candidates) // 2, (recent[0], recent[0]))
        chosen: tuple[tuple[int, ...], dict[str, Any], np.ndarray] | None = None
        for _ in range(8):
            operands = draw(st.sampled_from(candidates))
            args = [values[i] for i in operands]
            static = draw(op.statics(args[0].ndim)) if op.statics is not None else {}
            if name in ("sum", "mean", "logsumexp") and args[0].ndim == 0:
                static = {**static, "axis": None}
            if name == "softmax" and args[0].ndim == 0:
                continue
            value = _try(op, args, static)
            if value is not None:
                chosen = (operands, static, value)
                break
        if chosen is None and op.new_weight:
            # matmul against a fresh weight input shaped to fit the first operand.
            i = draw(
                st.sampled_from([k for k in range(len(values)) if values[k].ndim >= 1] or [None])
            )
            if i is not None:
                k = values[i].shape[-1]
                shape = (k,) if draw(st.booleans()) else (k, draw(st.integers(2, 3)))
                j = add_input(shape)
                value = _try(op, [values[i], values[j]], {})
                if value is not None:
                    chosen = ((i, j), {}, value)
        if chosen is None:
            # tanh is safe everywhere and bounded: the program still gets its application.
            name, op = "tanh", GRAPH_OPS["tanh"]
            i = draw(st.integers(0, len(values) - 1))
            chosen = ((i,), {}, np.tanh(values[i]))
        operands, static, value = chosen
        steps.append(Step(name, operands, tuple(sorted(static.items())), value.shape))
        values.append(value)

    used = {i for s in steps for i in s.operands}
    total = sum(float(np.sum(values[i])) for i in range(len(steps)) if i not in used)
    return RandomGraph(tuple(steps), tuple(inputs), total)
