"""Testing nodes with pytest: one check per registered node, example and dtype.

The pytest plugin (`funcgraph_pytest`, loaded through the `pytest11` entry point) builds on
these; they are as useful in a plain test:

```python
import pytest
from funcgraph.testing import registry_cases

@pytest.mark.parametrize("case", registry_cases("mypkg.*"), ids=str)
def test_node(case):
    case.run()   # raises AssertionError carrying the report's table
```

**Varied shapes.** An example function may take a keyword `shape` with a default, as in
`example=lambda key, shape=(3, 4): (jax.random.normal(key, shape),)`. The node then declares
that it works at other shapes of that rank, and `registry_cases(shapes=n)` adds a case that
checks it at `n` shapes drawn by hypothesis.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from funcgraph.checking import Report, check
from funcgraph.node import Example, Node, registry

__all__ = [
    "NodeCase",
    "check_node",
    "example_functions",
    "registry_cases",
    "select_nodes",
    "shape_strategy",
]


def example_functions(f: Any) -> tuple[Callable[..., Any], ...]:
    """The example functions declared on a node (`example=`) or a function (`@fg.example`)."""
    if isinstance(f, Node):
        return tuple(getattr(f, "_example_fns", ()))
    return tuple(getattr(f, "__funcgraph_examples__", ()))


def _default_shape(fn: Callable[..., Any]) -> tuple[int, ...] | None:
    try:
        param = inspect.signature(fn).parameters.get("shape")
    except (TypeError, ValueError):
        return None
    if param is None or not isinstance(param.default, tuple):
        return None
    return tuple(int(n) for n in param.default)


def shape_strategy(fn: Callable[..., Any], max_side: int = 5) -> Any | None:
    """A hypothesis strategy of shapes for an example function that takes `shape=` (same rank
    as its default, sides 1 to `max_side`), or `None` when it takes no shape."""
    default = _default_shape(fn)
    if default is None:
        return None
    from hypothesis.extra import numpy as hnp

    return hnp.array_shapes(
        min_dims=len(default), max_dims=len(default), min_side=1, max_side=max_side
    )


def _as_example(made: Any) -> Example:
    if isinstance(made, Example):
        return Example(tuple(made.args), dict(made.static))
    return Example(made if isinstance(made, tuple) else (made,), {})


def check_node(
    node: Node,
    example: int = 0,
    dtypes: Sequence[Any] | None = None,
    seeds: int | Sequence[int] = 2,
    key: int = 0,
    shape: Sequence[int] | None = None,
    **options: Any,
) -> Report:
    """Check one node at one of its declared examples.

    **Arguments:**

    - `node`: the node.
    - `example`: which declared example function to draw from.
    - `dtypes`: check with the floating inputs cast to each of these dtypes (default: as the
      example makes them).
    - `seeds`: random directions, as for [`funcgraph.check`][].
    - `key`: the PRNG seed the example is drawn with.
    - `shape`: for an example function that takes `shape=`, the shape to draw at.
    - `options`: passed on to [`funcgraph.check`][].

    **Returns:** the [`funcgraph.Report`][].
    """
    fns = example_functions(node)
    if not fns:
        raise ValueError(f"node {node.name!r} declares no examples (example= on @fg.node)")
    fn = fns[example]
    k = jax.random.split(jax.random.key(key), max(len(fns), 1))[example]
    made = _as_example(fn(k) if shape is None else fn(k, shape=tuple(shape)))
    report = check(
        node,
        *made.args,
        static={**dict(made.static), **dict(options.pop("static", {}) or {})},
        seeds=seeds,
        dtypes=dtypes,
        **options,
    )
    where = f"{node.qualname} example {example}" + (f" at shape {tuple(shape)}" if shape else "")
    return dataclasses.replace(report, title=f"fg.check({where})")


@dataclasses.dataclass(frozen=True)
class NodeCase:
    """One registry test: a node, one of its examples, and the dtypes and seeds to check in.

    With `shapes > 0` (only for examples that take `shape=`), the case instead checks the node
    at that many shapes drawn by hypothesis.
    """

    node: Node
    example: int
    dtypes: tuple[Any, ...]
    seeds: tuple[int, ...]
    shapes: int = 0
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def id(self) -> str:
        """A test id: `mypkg.nodes.mul[0]`, `[0]-shapes` for drawn shapes."""
        return f"{self.node.qualname}[{self.example}]" + ("-shapes" if self.shapes else "")

    def __str__(self) -> str:
        return self.id

    def check(self) -> Report:
        """Run the check and return the report (drawn shapes: the first failing one's)."""
        if self.shapes:
            return self._check_shapes()
        return check_node(
            self.node, self.example, self.dtypes or None, self.seeds, **dict(self.options)
        )

    def run(self) -> Report:
        """Like `check`, raising `AssertionError` with the report's table if anything fails."""
        __tracebackhide__ = True
        report = self.check()
        if not report.ok:
            raise AssertionError(str(report))
        return report

    def _check_shapes(self) -> Report:
        from hypothesis import HealthCheck, given, settings

        fn = example_functions(self.node)[self.example]
        strategy = shape_strategy(fn)
        if strategy is None:
            raise ValueError(f"example {self.example} of {self.node.name!r} takes no shape=")
        found: list[Report] = []

        @settings(
            max_examples=self.shapes,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def each(shape: tuple[int, ...]) -> None:
            report = check_node(
                self.node,
                self.example,
                self.dtypes[:1] or None,
                self.seeds[:1],
                shape=shape,
                **dict(self.options),
            )
            found.append(report)
            assert report.ok, str(report)

        try:
            each()
        except AssertionError:
            bad = [r for r in found if not r.ok]
            return bad[-1] if bad else found[-1]
        return Report.combine(found, title=f"fg.check({self.node.qualname} at drawn shapes)")


def select_nodes(patterns: Sequence[str] = (), modules: Sequence[str] = ()) -> list[Node]:
    """Registered nodes whose qualified name matches any glob in `patterns`, after importing
    `modules` (which registers their nodes). No patterns: every node outside funcgraph's own
    library (`funcgraph.*`), which funcgraph tests itself."""
    for name in modules:
        importlib.import_module(name)
    nodes = list(registry().values())
    if not patterns:
        return [n for n in nodes if not n.qualname.startswith("funcgraph.")]
    return [n for n in nodes if any(fnmatch.fnmatchcase(n.qualname, p) for p in patterns)]


def registry_cases(
    patterns: str | Sequence[str] = (),
    modules: Sequence[str] = (),
    dtypes: Sequence[Any] = ("float32", "float64"),
    seeds: int | Sequence[int] = 2,
    shapes: int = 3,
    **options: Any,
) -> list[NodeCase]:
    """One [`NodeCase`][funcgraph.testing.NodeCase] per registered node and declared example,
    plus one per example that takes `shape=` (checked at `shapes` hypothesis-drawn shapes).

    **Arguments:**

    - `patterns`: glob(s) of node qualnames, e.g. `"mypkg.*"` (see `select_nodes`).
    - `modules`: modules to import first, so that their nodes are registered.
    - `dtypes`: the dtypes each example is checked in.
    - `seeds`: how many seeds (or which).
    - `shapes`: drawn shapes per shape-taking example (0: none).
    - `options`: passed on to [`funcgraph.check`][].

    **Returns:** the cases, in registry order; nodes without examples are left out.
    """
    if isinstance(patterns, str):
        patterns = (patterns,)
    seed_list = tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds)
    cases = []
    for node in select_nodes(patterns, modules):
        for i, fn in enumerate(example_functions(node)):
            cases.append(NodeCase(node, i, tuple(dtypes), seed_list, 0, dict(options)))
            if shapes and _default_shape(fn) is not None:
                cases.append(NodeCase(node, i, tuple(dtypes), seed_list, shapes, dict(options)))
    return cases
