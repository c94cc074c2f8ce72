r"""Timing and memory measurement shared by the benchmarks.

Timings are medians over interleaved repeats: side A, side B, side A, side B, ..., so that a
change in machine load (another process, frequency scaling) hits both sides alike and cancels in
the ratio. Compilation is done before the first timed repeat and reported separately.

Each repeat records wall-clock time and the process's CPU time (all its threads). On a machine
that other processes share, wall time includes waiting for a core, and its ratios scatter; CPU
time counts only the work done, and its ratios stay tight, so both are reported.

Compiled memory is XLA's own account of the scratch space a program needs,
`memory_analysis().temp_size_in_bytes`, which on CPU is deterministic.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

__all__ = [
    "Ratio",
    "Timing",
    "compile_seconds",
    "interleaved",
    "paired_ratio",
    "ratio",
    "temp_bytes",
]


class Timing(NamedTuple):
    """Per-call seconds of one side of a comparison.

    **Attributes:**

    - `median`: the median over repeats of the mean per-call wall time within a repeat.
    - `samples`: every repeat's per-call wall time, in the order they ran.
    - `inner`: calls per repeat (chosen so one repeat is long enough to time).
    - `cpu_samples`: every repeat's per-call CPU time of this process (all threads).
    """

    median: float
    samples: tuple[float, ...]
    inner: int
    cpu_samples: tuple[float, ...] = ()

    @property
    def cpu_median(self) -> float:
        """The median per-call CPU time."""
        return statistics.median(self.cpu_samples)


def _run_both(fn: Callable[[], Any], inner: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(inner):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - wall) / inner, (time.process_time() - cpu) / inner


def _run(fn: Callable[[], Any], inner: int) -> float:
    return _run_both(fn, inner)[0]


def interleaved(
    fns: Mapping[str, Callable[[], Any]],
    *,
    repeats: int,
    min_repeat_s: float = 0.02,
    max_inner: int = 1000,
    warmup: bool = True,
) -> dict[str, Timing]:
    """Time several zero-argument functions as medians over interleaved repeats.

    Each function is called once first (compiling it, if it is jitted) and that call is not
    timed. Then every repeat calls each function `inner` times in turn, A B A B ..., and records
    the mean per-call time; `inner` is the same for all sides, chosen from the slowest side so a
    repeat lasts at least `min_repeat_s`.

    **Arguments:**

    - `fns`: the sides, by name; each returns JAX arrays (waited on with `block_until_ready`).
    - `repeats`: how many interleaved repeats.
    - `min_repeat_s`: the shortest repeat worth timing (timer resolution, call overhead).
    - `max_inner`: the most calls per repeat.
    - `warmup`: make the untimed first call (turn off for functions that compile afresh on
      every call, where a warm-up would only double the cost).

    **Returns:** a [`Timing`][] per side.
    """
    if warmup:
        for fn in fns.values():
            jax.block_until_ready(fn())
    if max_inner == 1:
        inner = 1
    else:
        # The fastest of a few single calls: one stray slow call (a GC pause) would otherwise
        # make every repeat a single call, too short to time.
        slowest = max(min(_run(fn, 1) for _ in range(3)) for fn in fns.values())
        inner = int(min(max_inner, max(1, math.ceil(min_repeat_s / max(slowest, 1e-9)))))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(repeats):
        # Alternate which side goes first, so neither always runs on a warmer cache.
        order = list(fns.items()) if i % 2 == 0 else list(reversed(fns.items()))
        for name, fn in order:
            wall, used = _run_both(fn, inner)
            samples[name].append(wall)
            cpu[name].append(used)
    return {
        name: Timing(statistics.median(s), tuple(s), inner, tuple(cpu[name]))
        for name, s in samples.items()
    }


def compile_seconds(fn: Callable[..., Any], *args: Any) -> float:
    """Seconds to trace, lower and compile `jax.jit(fn)` for `args` (a fresh jit each time)."""
    start = time.perf_counter()
    jax.jit(fn).lower(*args).compile()
    return time.perf_counter() - start


def temp_bytes(fn: Callable[..., Any], *args: Any) -> int:
    """XLA's compiled temporary (scratch) memory of `jax.jit(fn)` at `args`, in bytes.

    `fn` may also be an already compiled function (`jax.jit(f).lower(...).compile()`), given
    without `args`.
    """
    compiled = fn if not args and hasattr(fn, "memory_analysis") else None
    if compiled is None:
        compiled = jax.jit(fn).lower(*args).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
        raise RuntimeError("this JAX backend gives no memory_analysis() for compiled programs")
    return int(analysis.temp_size_in_bytes)


class Ratio(NamedTuple):
    """A time ratio A/B from interleaved repeats.

    **Attributes:**

    - `median`: the median over repeats of $a_i / b_i$, each the ratio of two neighbouring
      measurements, so that load on the machine that changes during the run (other processes)
      affects both parts of each ratio alike.
    - `low`, `high`: the first and third quartile of those ratios (the spread from noise).
    """

    median: float
    low: float
    high: float


def paired_ratio(a: Timing, b: Timing, *, cpu: bool = False) -> Ratio:
    """The ratio of two sides timed together by [`interleaved`][], repeat by repeat (of wall
    time, or of CPU time with `cpu=True`)."""
    xs, ys = (a.cpu_samples, b.cpu_samples) if cpu else (a.samples, b.samples)
    ratios = sorted(x / y for x, y in zip(xs, ys, strict=True))
    if len(ratios) < 2:
        return Ratio(ratios[0], ratios[0], ratios[0])
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return Ratio(statistics.median(ratios), q1, q3)


def ratio(numerator: float, denominator: float) -> float | None:
    r"""$a / b$, or `None` when $b = 0$ (a ratio that does not exist is not reported as one)."""
    if denominator == 0:
        return None
    return numerator / denominator
