"""The benchmark command: `python -m benchmarks.run [--quick] [--out DIR] [--doc PATH]`
(or `python benchmarks/run.py ...`).

Runs the four comparisons of the benchmark suite in one process (the gradient checks in worker
processes of their own) and writes `results.md` and `results.json` to `--out`:

1. train-step time of the same networks, funcgraph nodes against plain `jnp` + `jax.grad`;
2. compiled temporary memory of those steps;
3. gradient-check cost on a dense node: `fg.check`, `jax.test_util.check_grads`,
   `torch.autograd.gradcheck` (fast and slow; skipped when torch is absent);
4. graph overhead of a 1000-node graph: `fg.trace` and the jitted `graph.backward` against
   `jax.make_jaxpr` and jitted `jax.grad`.

`--quick` uses tiny sizes and one or two repeats: it proves the command works (CI runs it) and
its numbers mean nothing. The full run takes about five minutes on two cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["ANALYSIS_MARKER", "DEFAULT_SECTIONS", "SECTIONS", "doc_page", "main", "run"]

SECTIONS = ("train_step", "gradcheck", "overhead", "nodes")
# "nodes" (each node of the networks alone against autodiff) explains a missed target; it is
# not part of the default run.
DEFAULT_SECTIONS = ("train_step", "gradcheck", "overhead")

_DOC_HEADER = """\
# Benchmarks

Claims about speed and memory, measured in one run against what a user would otherwise pick:
the same networks written in plain `jnp` and differentiated by `jax.grad`, JAX's and torch's
gradient checkers, and JAX's own tracing and differentiation. Every ratio below comes from one
run of

```bash
pip install -e '.[bench]'        # torch (CPU) for the gradient-check comparison; optional
python -m benchmarks.run --out out/benchmarks --doc docs/benchmarks.md
```

with the two sides of each comparison interleaved. `python -m benchmarks.run --quick` runs the
same code at tiny sizes in well under a minute (CI does, to prove it works; its numbers mean
nothing). Ratios are funcgraph / baseline: below 1 funcgraph is faster or smaller.

"""


ANALYSIS_MARKER = "<!-- analysis: written by hand, kept when the results above are rerun -->"


def doc_page(results_page: str, path: Path) -> str:
    """The documentation page: a fixed header, the results, and the hand-written analysis that
    follows `ANALYSIS_MARKER` in the existing page (kept as it is)."""
    body = results_page.split("\n", 1)[1] if results_page.startswith("# ") else results_page
    analysis = ANALYSIS_MARKER + "\n"
    if path.exists():
        old = path.read_text(encoding="utf-8")
        if ANALYSIS_MARKER in old:
            analysis = old[old.index(ANALYSIS_MARKER) :]
    return _DOC_HEADER + body.strip("\n") + "\n\n" + analysis


def _log(msg: str) -> None:
    print(f"[benchmarks] {msg}", file=sys.stderr, flush=True)


def run(*, quick: bool, sections: Sequence[str] = DEFAULT_SECTIONS) -> dict[str, Any]:
    """Run the selected sections and return the results (what `results.json` holds).

    **Arguments:**

    - `quick`: tiny sizes and few repeats (a smoke test; the numbers mean nothing).
    - `sections`: any of [`SECTIONS`][] (default [`DEFAULT_SECTIONS`][]); `"train_step"` covers
      both time and memory.

    **Returns:** a dict with `machine`, `quick`, `seconds`, one entry per section and
    `targets`.
    """
    from benchmarks import report

    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown benchmark section(s) {sorted(unknown)}; choose from {SECTIONS}")
    start = time.perf_counter()
    results: dict[str, Any] = {"quick": quick, "machine": report.machine()}
    if "train_step" in sections:
        from benchmarks import networks

        _log("train steps: funcgraph nodes vs jnp + jax.grad")
        results["train_step"] = networks.run(
            networks.networks(quick=quick),
            repeats=2 if quick else 15,
            min_repeat_s=0.02 if quick else 0.1,
        )
    if "gradcheck" in sections:
        from benchmarks import gradcheck

        _log("gradient checks on a dense node (one process per checker and size)")
        results["gradcheck"] = gradcheck.run(
            sizes=(8,) if quick else (64, 256, 1024, 4096),
            batch=4 if quick else 8,
            repeats=1 if quick else 3,
            memory_budget_bytes=2**31,
        )
    if "overhead" in sections:
        from benchmarks import overhead

        _log("graph overhead: fg.trace / graph.backward vs jax.make_jaxpr / jax.grad")
        results["overhead"] = overhead.run(
            applications=40 if quick else 1000,
            width=16,
            repeats=2 if quick else 5,
            compile_repeats=1 if quick else 2,
            min_repeat_s=0.02 if quick else 0.1,
        )
    if "nodes" in sections:
        from benchmarks import node_breakdown

        _log("node by node: each node alone vs autodiff of its plain code")
        results["nodes"] = node_breakdown.run(
            quick=quick, repeats=2 if quick else 15, min_repeat_s=0.02 if quick else 0.1
        )
    results["targets"] = report.targets(results)
    results["seconds"] = time.perf_counter() - start
    results["load_average_end"] = report.load_average()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (0 also when a target is missed: the
    benchmark reports, it does not judge)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="funcgraph's benchmarks: ratios against plain JAX (and torch), one run.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument(
        "--out", type=Path, default=Path("out/benchmarks"), help="folder for results.md/.json"
    )
    parser.add_argument(
        "--doc", type=Path, default=None, help="also write the results page here (docs/...)"
    )
    parser.add_argument(
        "--sections",
        default=",".join(DEFAULT_SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all but nodes)",
    )
    args = parser.parse_args(argv)
    from benchmarks import report

    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    results = run(quick=args.quick, sections=sections)
    page = report.markdown(results)
    report.write_atomic(args.out / "results.json", report.to_json(results))
    report.write_atomic(args.out / "results.md", page)
    if args.doc is not None:
        report.write_atomic(args.doc, doc_page(page, args.doc))
    _log(f"wrote {args.out / 'results.md'} and results.json in {results['seconds']:.0f} s")
    for claim in results["targets"]:
        verdict = "met" if claim["met"] else "MISSED"
        _log(f"{claim['claim']}: {claim['ratio']:.2f} (target ≤ {claim['target']}) {verdict}")
    return 0


if __name__ == "__main__":
    if not __package__:
        # Run as a script (`python benchmarks/run.py`): make the package importable.
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
