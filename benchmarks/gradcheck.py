r"""Gradient-check cost: funcgraph's checker against `jax.test_util.check_grads` and torch.

All checkers check the same dense node $y = x W + b$ with $x$ of shape `(batch, n)`, $W$ of
shape `(n, n)` and $b$ of shape `(n,)`, in float64, with a hand-written backward:

- `fg.check`: funcgraph's checker with its defaults (3 random seeds; autodiff of the reference
  forward, float64 finite differences with a Taylor-rate verdict, the adjoint test; contracts).
- `jax.test_util.check_grads(order=1, modes=["rev"])`: the VJP against a central finite
  difference, projected on one random direction (custom_vjp functions have no forward mode).
- `torch.autograd.gradcheck` in fast mode (random projections) and slow mode (full numerical
  and analytical Jacobians), of the same node written as a `torch.autograd.Function`. torch is
  optional (the `bench` extra); without it those rows say so.

For every checker and size: the time of one check (the first call in a fresh process, which
includes tracing and compilation, and the median of the calls after it), the peak resident
memory it added, whether it passes the correct node and whether it catches a planted error: the
same node with its backward scaled by 1.001.

Each (checker, size) runs in its own process, so that peak memory is the check's alone; the
checkers take turns size by size. Slow-mode gradcheck builds Jacobians of
$8\,(n_\text{in} \cdot n_\text{out})$ bytes each; sizes whose two Jacobians exceed the memory
budget are reported as skipped, with what they would need.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "CHECKERS",
    "PLANTED_SCALE",
    "jacobian_bytes",
    "run",
    "torch_available",
]

PLANTED_SCALE = 1.001
CHECKERS = ("fg.check", "jax check_grads", "torch gradcheck fast", "torch gradcheck slow")
_TORCH = ("torch gradcheck fast", "torch gradcheck slow")


def torch_available() -> bool:
    """Whether torch can be imported (it is the optional `bench` extra)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def jacobian_bytes(n: int, batch: int) -> int:
    r"""Bytes of the numerical and analytical float64 Jacobians slow-mode gradcheck builds:
    $2 \cdot 8 \cdot (b n + n^2 + n) \cdot b n$."""
    n_in = batch * n + n * n + n
    n_out = batch * n
    return 2 * 8 * n_in * n_out


# -- measuring inside the worker process -------------------------------------------------------


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> bool:
    # Writing 5 to clear_refs resets the peak resident set size (VmHWM) to the current one.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _measure(
    check: Callable[[], bool],
    planted: Callable[[], bool],
    repeats: int,
    repeat_budget_s: float = 20.0,
) -> dict[str, Any]:
    """Time `check` (first call and the median of up to `repeats - 1` more, fewer once all
    calls have taken `repeat_budget_s`), its peak RSS increase, whether it passes, and whether
    `planted` (the same check of the wrong node) fails."""
    import gc

    gc.collect()
    exact_peak = _reset_peak()
    before = _status("VmRSS")
    start = time.perf_counter()
    passed = check()
    first = time.perf_counter() - start
    peak = _status("VmHWM") - before if exact_peak else None
    times = []
    for _ in range(max(repeats - 1, 0)):
        # A check that already took long is not repeated: its first call is its cost.
        if first + sum(times) > repeat_budget_s:
            break
        start = time.perf_counter()
        passed = check() and passed
        times.append(time.perf_counter() - start)
    result: dict[str, Any] = {
        "first_s": first,
        "median_s": statistics.median(times) if times else None,
        "later_calls": len(times),
        "peak_bytes": peak,
        "passes_correct": bool(passed),
        "catches_planted": None,
    }
    # Reported before the planted check runs, so a worker stopped for time still tells its cost.
    print(json.dumps(result), flush=True)
    result["catches_planted"] = not planted()
    return result


def _jax_checks(checker: str, n: int, batch: int) -> tuple[Callable[[], bool], ...]:
    import jax
    import numpy as np

    # A process of its own: float64 everywhere, as torch's gradcheck requires.
    jax.config.update("jax_enable_x64", True)
    import funcgraph as fg
    from funcgraph.nodes import dense

    planted = fg.node(dense.reference, name="dense_planted", save="inputs", register=False)

    @planted.backward
    def _planted_backward(x, w, b, out, g):
        return tuple(PLANTED_SCALE * t for t in dense.rule(x, w, b, out, g))

    rng = np.random.default_rng(0)
    args = (
        rng.standard_normal((batch, n)),
        rng.standard_normal((n, n)) / np.sqrt(n),
        rng.standard_normal((n,)),
    )
    args = tuple(jax.numpy.asarray(a) for a in args)
    if checker == "fg.check":
        return (lambda: fg.check(dense, *args).ok, lambda: fg.check(planted, *args).ok)

    from jax.test_util import check_grads

    def passes(f: Callable[..., Any]) -> bool:
        try:
            check_grads(f, args, order=1, modes=["rev"])
        except AssertionError:
            return False
        return True

    return (lambda: passes(dense), lambda: passes(planted))


def _torch_checks(checker: str, n: int, batch: int, threads: int) -> tuple[Callable, ...]:
    import torch

    torch.set_num_threads(threads)

    def make(scale: float) -> Callable[..., Any]:
        class Dense(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, w, b):  # type: ignore[override]
                ctx.save_for_backward(x, w)
                return x @ w + b

            @staticmethod
            def backward(ctx, g):  # type: ignore[override]
                x, w = ctx.saved_tensors
                return scale * (g @ w.T), scale * (x.T @ g), scale * g.sum(0)

        return Dense.apply

    gen = torch.Generator().manual_seed(0)
    args = tuple(
        t.requires_grad_()
        for t in (
            torch.randn(batch, n, dtype=torch.float64, generator=gen),
            torch.randn(n, n, dtype=torch.float64, generator=gen) / n**0.5,
            torch.randn(n, dtype=torch.float64, generator=gen),
        )
    )
    fast = checker.endswith("fast")

    def passes(f: Callable[..., Any]) -> bool:
        return bool(torch.autograd.gradcheck(f, args, fast_mode=fast, raise_exception=False))

    correct, wrong = make(1.0), make(PLANTED_SCALE)
    return (lambda: passes(correct), lambda: passes(wrong))


def _worker(argv: Sequence[str]) -> None:
    checker, n, batch, repeats, threads = argv[0], int(argv[1]), int(argv[2]), int(argv[3]), int(
        argv[4]
    )
    if checker in _TORCH:
        check, planted = _torch_checks(checker, n, batch, threads)
    else:
        check, planted = _jax_checks(checker, n, batch)
    print(json.dumps(_measure(check, planted, repeats)))


# -- orchestrating ------------------------------------------------------------------------------


def _run_worker(
    checker: str, n: int, batch: int, repeats: int, threads: int, timeout_s: float
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.gradcheck",
        checker,
        str(n),
        str(batch),
        str(repeats),
        str(threads),
    ]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    try:
        done = subprocess.run(
            cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as err:
        # The worker prints its measurements before the planted check: keep what it finished.
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        lines = out.strip().splitlines()
        partial = json.loads(lines[-1]) if lines else {}
        what = "the planted check" if partial else "the check"
        partial["timed_out"] = f"{what} was stopped after {timeout_s:.0f} s"
        if not lines:
            partial["skipped"] = f"timed out after {timeout_s:.0f} s"
        return partial
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"exit {done.returncode}: {tail}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(
    *,
    sizes: Sequence[int],
    batch: int,
    repeats: int,
    memory_budget_bytes: int,
    torch_threads: int = 1,
    timeout_s: float = 120.0,
    checkers: Sequence[str] = CHECKERS,
) -> dict[str, Any]:
    """Run every checker at every size, each in a fresh process, checkers taking turns.

    **Arguments:**

    - `sizes`: the dense node's widths $n$ (its weight is $n \\times n$).
    - `batch`: rows of $x$.
    - `repeats`: check calls per process (the first is timed apart, as "first call").
    - `memory_budget_bytes`: slow-mode gradcheck is skipped where its Jacobians need more.
    - `torch_threads`: `torch.set_num_threads` in the torch workers.
    - `timeout_s`: a worker running longer is stopped and reported as timed out.
    - `checkers`: which of [`CHECKERS`][] to run.

    **Returns:** the section of the results: the setup and one row per (checker, size).
    """
    has_torch = torch_available()
    rows = []
    for n in sizes:
        for checker in checkers:
            row: dict[str, Any] = {"checker": checker, "n": n, "batch": batch}
            if checker in _TORCH and not has_torch:
                row["skipped"] = "torch is not installed (pip install -e '.[bench]')"
            elif checker == "torch gradcheck slow" and jacobian_bytes(n, batch) > (
                memory_budget_bytes
            ):
                need = jacobian_bytes(n, batch) / 1e9
                row["skipped"] = (
                    f"would need {need:,.1f} GB for its Jacobians "
                    f"(budget {memory_budget_bytes / 1e9:.1f} GB)"
                )
            else:
                row.update(_run_worker(checker, n, batch, repeats, torch_threads, timeout_s))
            rows.append(row)
    return {
        "node": "dense y = x W + b, float64, hand-written backward",
        "batch": batch,
        "planted_scale": PLANTED_SCALE,
        "torch_available": has_torch,
        "torch_threads": torch_threads,
        "memory_budget_bytes": memory_budget_bytes,
        "rows": rows,
    }


if __name__ == "__main__":
    _worker(sys.argv[1:])
