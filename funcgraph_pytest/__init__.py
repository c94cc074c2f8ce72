"""funcgraph's pytest plugin, registered through the `pytest11` entry point.

Installing funcgraph is enough; no conftest is needed. The plugin loads in every pytest run of
every environment funcgraph is installed in, so it is a top-level module of its own (importing
anything under `funcgraph` would import JAX), imports only pytest at load time, and does nothing
unless a test asks:

- the **`gradcheck` fixture**: `gradcheck(f, *args, **options)` runs
  [`funcgraph.assert_gradients`][] with the ini options below; a failure prints the table.
- the **`funcgraph_case` parameter**: a test taking it runs once per registered node, example
  (and shape-taking example at hypothesis-drawn shapes), checked in the configured dtypes and
  seeds: `def test_nodes(funcgraph_case): funcgraph_case.run()`. The marker
  `@pytest.mark.funcgraph_nodes("mypkg.*")` picks the nodes for one test.
- **`funcgraph_check_registry = true`** (or `--funcgraph-nodes GLOB`): the plugin adds those
  tests itself, without any test file.

ini options (`pytest.ini`, or `[tool.pytest.ini_options]` in pyproject.toml):

| option | meaning | default |
|---|---|---|
| `funcgraph_seeds` | random seeds per check | 2 |
| `funcgraph_rtol`, `funcgraph_atol` | fixed tolerances replacing the dtype-derived ones | unset |
| `funcgraph_dtypes` | dtypes the registry tests check nodes in | float32 float64 |
| `funcgraph_nodes` | globs of node qualnames the registry tests cover | all but `funcgraph.*` |
| `funcgraph_modules` | modules to import so that their nodes register | none |
| `funcgraph_shapes` | hypothesis-drawn shapes per shape-taking example | 3 |
| `funcgraph_check_registry` | add the registry tests automatically | false |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

__all__ = ["RegistryItem", "gradcheck"]

_INI: list[tuple[str, str, str | None, Any]] = [
    ("funcgraph_seeds", "funcgraph: random seeds per gradient check", None, "2"),
    ("funcgraph_rtol", "funcgraph: fixed relative tolerance (default: from the dtype)", None, ""),
    ("funcgraph_atol", "funcgraph: fixed absolute tolerance (default: from the dtype)", None, ""),
    (
        "funcgraph_dtypes",
        "funcgraph: dtypes the registry tests check nodes in",
        "args",
        ["float32", "float64"],
    ),
    ("funcgraph_nodes", "funcgraph: globs of node qualnames the registry tests cover", "args", []),
    ("funcgraph_modules", "funcgraph: modules to import so that their nodes register", "args", []),
    ("funcgraph_shapes", "funcgraph: hypothesis-drawn shapes per shape-taking example", None, "3"),
    (
        "funcgraph_check_registry",
        "funcgraph: add a test per registered node and example",
        "bool",
        False,
    ),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    for name, help_text, kind, default in _INI:
        if kind is None:
            parser.addini(name, help_text, default=default)
        else:
            parser.addini(name, help_text, type=kind, default=default)  # type: ignore[arg-type]
    group = parser.getgroup("funcgraph")
    group.addoption(
        "--funcgraph-nodes",
        action="append",
        metavar="GLOB",
        default=None,
        help="check every registered node whose qualified name matches GLOB (repeatable); "
        "adds one test per node and example",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "funcgraph_nodes(*globs): the registered nodes a test taking `funcgraph_case` covers",
    )


def _float_or_none(text: str) -> float | None:
    text = str(text).strip()
    return float(text) if text else None


def check_options(config: pytest.Config) -> dict[str, Any]:
    """The `fg.check` options the ini file sets (seeds and tolerances)."""
    options: dict[str, Any] = {"seeds": int(config.getini("funcgraph_seeds"))}
    for name in ("rtol", "atol"):
        value = _float_or_none(config.getini(f"funcgraph_{name}"))
        if value is not None:
            options[name] = value
    return options


def _cases(config: pytest.Config, patterns: Any = None) -> list[Any]:
    from funcgraph.testing import registry_cases

    options = check_options(config)
    seeds = options.pop("seeds")
    return registry_cases(
        tuple(patterns if patterns is not None else config.getini("funcgraph_nodes")),
        modules=tuple(config.getini("funcgraph_modules")),
        dtypes=tuple(config.getini("funcgraph_dtypes")),
        seeds=seeds,
        shapes=int(config.getini("funcgraph_shapes")),
        **options,
    )


@pytest.fixture
def gradcheck(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """`gradcheck(f, *args, **options)`: [`funcgraph.assert_gradients`][] with the ini's
    seeds and tolerances (options given here win). Returns the report."""
    defaults = check_options(request.config)

    def run(f: Callable[..., Any], *args: Any, **options: Any) -> Any:
        __tracebackhide__ = True
        from funcgraph.checking import assert_gradients

        return assert_gradients(f, *args, **{**defaults, **options})

    return run


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "funcgraph_case" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("funcgraph_nodes")
    cases = _cases(metafunc.config, marker.args if marker else None)
    metafunc.parametrize("funcgraph_case", cases, ids=[c.id for c in cases])


class RegistryItem(pytest.Item):
    """A test the plugin adds for one registered node and example."""

    def __init__(self, *, case: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        self.case.run()

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, AssertionError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[str, int | None, str]:
        return "funcgraph", None, f"funcgraph check: {self.case.id}"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    patterns = config.getoption("funcgraph_nodes")
    if patterns is None and not config.getini("funcgraph_check_registry"):
        return
    for case in _cases(config, patterns):
        items.append(RegistryItem.from_parent(session, name=f"funcgraph::{case.id}", case=case))
