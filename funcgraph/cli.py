"""The `funcgraph` command: `check`, `draw` and `demo`.

```
funcgraph check my_nodes.py            # every node (and @fg.example function) defined there
funcgraph check my_model.py:loss       # one function, at its declared example arguments
funcgraph draw my_model.py:loss -o loss.svg
funcgraph demo --quick
```

`check` prints the report's table and exits 0 when every check passed, 1 when one failed and 2
on a usage or loading error, so it works as a CI step. Naming a file *imports and runs it*,
exactly as `python FILE` would.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

_DTYPES = ("float32", "float64", "bfloat16", "float16")
_RUNS_CODE = (
    "Naming a file or module imports it: its top-level code runs, exactly as `python FILE` "
    "would run it. Only check code you trust."
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("funcgraph")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="funcgraph",
        description="Hand-written gradients in JAX: check them, draw them, see the demo.",
        epilog=_RUNS_CODE,
    )
    parser.add_argument("--version", action="version", version=f"funcgraph {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser(
        "check",
        help="check hand-written gradients against autodiff, finite differences and the "
        "adjoint test",
        description="Check every node defined in MODULE_OR_FILE (and every function decorated "
        "with @fg.example there), or the one named by :NAME, at its declared examples. Prints "
        "the report; exits 0 if all checks pass, 1 if any fails, 2 on usage or loading errors. "
        + _RUNS_CODE,
    )
    check.add_argument("target", metavar="MODULE_OR_FILE[:NAME]")
    check.add_argument("--seeds", type=int, default=3, metavar="N", help="random seeds (3)")
    check.add_argument(
        "--dtype",
        action="append",
        choices=_DTYPES,
        dest="dtypes",
        help="check with the inputs cast to this dtype (repeatable; default: as the examples "
        "make them)",
    )
    check.add_argument(
        "--second-order", action="store_true", help="also check the gradient of the gradient"
    )
    check.add_argument("--rtol", type=float, help="fixed relative tolerance (default: dtype)")
    check.add_argument("--atol", type=float, help="fixed absolute tolerance (default: dtype)")
    check.add_argument(
        "-q", "--quiet", action="store_true", help="print summaries and failures only"
    )

    draw = sub.add_parser(
        "draw",
        help="draw a function's graph with its values and gradients",
        description="Draw the function (or node) named by MODULE_OR_FILE:NAME at its first "
        "declared example. " + _RUNS_CODE,
    )
    draw.add_argument("target", metavar="MODULE_OR_FILE:NAME")
    draw.add_argument("-o", "--output", required=True, help="output file: .svg, .png, .dot, .gv")
    draw.add_argument("--expand", action="store_true", help="draw lumped nodes' insides")

    demo = sub.add_parser("demo", help="gradient checks, then an MLP and a CNN trained on digits")
    demo.add_argument("--quick", action="store_true", help="a few epochs only (seconds)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.add_argument("--plot", metavar="PATH", help="where to save the loss curves")
    demo.add_argument("--no-plot", action="store_true", help="do not plot the loss curves")
    return parser


def _checkable(module: Any) -> tuple[list[Any], list[str]]:
    """The nodes and example-decorated functions defined in `module`, and the names of nodes
    there that declare no examples."""
    from funcgraph.node import Node, registry
    from funcgraph.testing import example_functions

    name = module.__name__
    found: dict[int, Any] = {}
    for node in registry().values():
        if node.qualname.startswith(name + "."):
            found[id(node)] = node
    for value in vars(module).values():
        if isinstance(value, Node) and getattr(value.reference, "__module__", None) == name:
            found.setdefault(id(value), value)
        elif (
            callable(value)
            and getattr(value, "__funcgraph_examples__", None)
            and getattr(value, "__module__", None) == name
        ):
            found.setdefault(id(value), value)
    items, without = [], []
    for obj in found.values():
        (items if example_functions(obj) else without).append(obj)
    return items, [getattr(o, "name", None) or o.__name__ for o in without]


def _check(args: argparse.Namespace) -> int:
    def fail(message: str) -> int:
        print(f"funcgraph check: error: {message}", file=sys.stderr)
        return 2

    if args.seeds < 1:
        return fail("--seeds must be at least 1")
    from funcgraph.loading import load_target

    try:
        module, obj = load_target(args.target)
    except Exception as err:  # the user's module may raise anything while it loads
        return fail(f"cannot load {args.target!r}: {type(err).__name__}: {err}")
    import jax

    from funcgraph.checking import check
    from funcgraph.node import examples_of

    if obj is None:
        items, without = _checkable(module)
        for name in without:
            print(f"skipped node {name!r}: it declares no examples (example= on @fg.node)")
        if not items:
            return fail(
                f"{args.target!r} defines no node or @fg.example function with examples to check"
            )
    else:
        if not callable(obj):
            return fail(f"{args.target!r} is a {type(obj).__name__}, not a node or function")
        try:
            has_examples = bool(examples_of(obj, jax.random.key(0)))
        except Exception as err:
            return fail(f"the examples of {args.target!r} failed: {type(err).__name__}: {err}")
        if not has_examples:
            return fail(
                f"{args.target!r} declares no example arguments: decorate it with "
                "@fg.example(lambda key: (...)) (nodes: example=...)"
            )
        items = [obj]
    failed = 0
    for item in items:
        try:
            report = check(
                item,
                seeds=args.seeds,
                dtypes=args.dtypes,
                second_order=args.second_order,
                rtol=args.rtol,
                atol=args.atol,
            )
        except Exception as err:  # a broken example or forward: report it, check the rest
            name = getattr(item, "name", None) or getattr(item, "__name__", "?")
            print(f"FAILED {name}: the check could not run: {type(err).__name__}: {err}")
            failed += 1
            continue
        if args.quiet:
            print(report.summary())
            for row in report.failures:
                print(f"  FAIL {row.where}.{row.input} {row.oracle}: {row.message}")
        else:
            print(report, end="\n\n")
        failed += not report.ok
    total = len(items)
    if failed:
        print(f"funcgraph check: {failed} of {total} checked FAILED")
        return 1
    print(f"funcgraph check: all {total} passed")
    return 0


def _draw(args: argparse.Namespace) -> int:
    from funcgraph.draw import cli_draw

    return cli_draw(args.target, args.output, args.expand)


def _demo(args: argparse.Namespace) -> int:
    from funcgraph.demo import run

    options: dict[str, Any] = {}
    if args.no_plot:
        options["plot"] = None
    elif args.plot:
        options["plot"] = args.plot
    return run(quick=args.quick, progress=not args.no_progress, **options)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `funcgraph` command with `argv` (default: the process's arguments).

    **Returns:** the exit code (argparse itself exits with 2 on a usage error).
    """
    args = _parser().parse_args(argv)
    commands = {"check": _check, "draw": _draw, "demo": _demo}
    return commands[args.command](args)


if __name__ == "__main__":  # pragma: no cover - `python -m funcgraph.cli`
    sys.exit(main())
