"""The results as Markdown tables and JSON, written atomically, and the machine they came from."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["load_average", "machine", "markdown", "targets", "to_json", "write_atomic"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return None


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other work competing for the cores)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores usable, memory, library versions."""
    import jax
    import jaxlib

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    try:
        import torch

        torch_version: str | None = str(torch.__version__)
    except ImportError:
        torch_version = None
    return {
        "load_average": load_average(),
        "cpu": _cpu_model(),
        "cores": cores,
        "memory_gb": _memory_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "jax_backend": jax.default_backend(),
        "torch": torch_version,
    }


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename, so a reader never sees
    half a file (and an interrupted run leaves the previous results intact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every claim with a target: its measured ratio, the target and whether it is met."""
    out = []
    for row in results.get("train_step", []):
        out.append(
            {
                "claim": f"train-step wall time, {row['network']}",
                "ratio": row["time_ratio"],
                "target": row["time_target"],
                "met": row["time_met"],
            }
        )
        out.append(
            {
                "claim": f"train-step CPU time, {row['network']}",
                "ratio": row["cpu_ratio"],
                "target": row["time_target"],
                "met": row["cpu_met"],
            }
        )
        if row["memory_target"] is not None:
            out.append(
                {
                    "claim": f"compiled temp memory, {row['network']}",
                    "ratio": row["memory_ratio"],
                    "target": row["memory_target"],
                    "met": row["memory_met"],
                }
            )
    return out


# -- Markdown --------------------------------------------------------------------------------


def _ms(s: float | None) -> str:
    return "–" if s is None else f"{s * 1e3:,.3g}"


def _seconds(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def _mb(b: float | None) -> str:
    return "–" if b is None else f"{b / 2**20:,.2f}"


def _ratio(r: float | None) -> str:
    return "–" if r is None else f"**{r:.2f}**"


def _spread(r: float | None, quartiles: list[float] | None) -> str:
    if r is None:
        return "–"
    if not quartiles:
        return _ratio(r)
    return f"{_ratio(r)} ({quartiles[0]:.2f}–{quartiles[1]:.2f})"


def _met(m: bool | None) -> str:
    return "–" if m is None else ("met" if m else "**missed**")


def _yes(b: bool | None) -> str:
    return "–" if b is None else ("yes" if b else "no")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _train_tables(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## 1. Train-step time", ""]
    lines += _table(
        [
            "network",
            "funcgraph (ms)",
            "jnp + jax.grad (ms)",
            "wall-time ratio (quartiles)",
            "CPU-time ratio (quartiles)",
            "target",
            "wall / CPU",
        ],
        [
            [
                r["network"],
                _ms(r["funcgraph_s"]),
                _ms(r["baseline_s"]),
                _spread(r["time_ratio"], r.get("time_ratio_quartiles")),
                _spread(r.get("cpu_ratio"), r.get("cpu_ratio_quartiles")),
                f"≤ {r['time_target']}",
                f"{_met(r['time_met'])} / {_met(r.get('cpu_met'))}",
            ]
            for r in rows
        ],
    )
    lines += ["", "Networks: " + "; ".join(f"{r['network']}: {r['description']}" for r in rows)]
    lines += [
        "",
        "Both sides agree before they are timed (largest gradient difference relative to the "
        "largest gradient entry: "
        + ", ".join(f"{r['gradient_max_relative_difference']:.1e}" for r in rows)
        + ").",
        "",
        "## 2. Compiled temporary memory of the same steps",
        "",
    ]
    lines += _table(
        ["network", "funcgraph (MiB)", "jnp + jax.grad (MiB)", "ratio", "target", ""],
        [
            [
                r["network"],
                _mb(r["funcgraph_temp_bytes"]),
                _mb(r["baseline_temp_bytes"]),
                _ratio(r["memory_ratio"]),
                "–" if r["memory_target"] is None else f"≤ {r['memory_target']}",
                _met(r["memory_met"]),
            ]
            for r in rows
        ],
    )
    return lines


def _gradcheck_table(section: dict[str, Any]) -> list[str]:
    lines = [
        "## 3. Gradient-check cost on a dense node",
        "",
        f"{section['node']}; x is ({section['batch']}, n), W is (n, n). Planted error: the "
        f"backward scaled by {section['planted_scale']}. Peak memory is the increase of the "
        "process's peak resident set during the first check.",
        "",
    ]
    table_rows = []
    for r in section["rows"]:
        name = f"{r['n']}×{r['n']}"
        if "skipped" in r or "error" in r:
            why = r.get("skipped") or f"error: {r['error']}"
            table_rows.append([name, r["checker"], f"skipped: {why}", "", "", "", ""])
            continue
        table_rows.append(
            [
                name,
                r["checker"],
                _seconds(r["first_s"]),
                _seconds(r["median_s"]),
                _mb(r["peak_bytes"]),
                _yes(r["passes_correct"]),
                _yes(r["catches_planted"])
                if r.get("catches_planted") is not None
                else f"not known: {r.get('timed_out', 'not run')}",
            ]
        )
    lines += _table(
        [
            "W",
            "checker",
            "first call",
            "later calls (median)",
            "peak (MiB)",
            "passes correct",
            "catches 1.001×",
        ],
        table_rows,
    )
    return lines


def _overhead_table(section: dict[str, Any]) -> list[str]:
    lines = [
        "## 4. Graph overhead",
        "",
        f"A chain of {section['applications']} hand-written nodes (tanh, mul, add with fan-out) "
        f"on vectors of {section['width']}. Both backward passes give the same gradient: "
        f"{_yes(section['gradients_agree'])}.",
        "",
    ]
    lines += _table(
        [
            "measure",
            "funcgraph",
            "JAX",
            "funcgraph",
            "JAX",
            "wall-time ratio (quartiles)",
            "CPU-time ratio (quartiles)",
        ],
        [
            [
                r["what"],
                r["funcgraph"],
                r["baseline"],
                _seconds(r["funcgraph_s"]),
                _seconds(r["baseline_s"]),
                _spread(r["ratio"], r.get("ratio_quartiles")),
                _spread(r.get("cpu_ratio"), r.get("cpu_ratio_quartiles")),
            ]
            for r in section["rows"]
        ],
    )
    return lines


def _load_note(m: dict[str, Any], end: list[float] | None) -> str:
    start = m.get("load_average")
    if not start:
        return "."
    note = f"; load average (1 min) {start[0]:.1f} at the start"
    if end:
        note += f", {end[0]:.1f} at the end"
    return note + " (other processes share the cores; interleaving cancels them in the ratios)."


def _nodes_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## Node by node",
        "",
        "Each node alone, differentiated by `jax.grad` with its hand-written rule against "
        "autodiff of its plain code, at the shapes it has in the networks above.",
        "",
    ]
    lines += _table(
        [
            "node",
            "funcgraph (ms)",
            "autodiff (ms)",
            "wall-time ratio (quartiles)",
            "CPU-time ratio (quartiles)",
            "funcgraph (MiB)",
            "autodiff (MiB)",
            "memory ratio",
        ],
        [
            [
                r["node"],
                _ms(r["funcgraph_s"]),
                _ms(r["baseline_s"]),
                _spread(r["time_ratio"], r.get("time_ratio_quartiles")),
                _spread(r.get("cpu_ratio"), r.get("cpu_ratio_quartiles")),
                _mb(r["funcgraph_temp_bytes"]),
                _mb(r["baseline_temp_bytes"]),
                _ratio(r["memory_ratio"]),
            ]
            for r in rows
        ],
    )
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The results as a Markdown page: the machine, one table per section, the targets."""
    m = results["machine"]
    mem = f", {m['memory_gb']:.0f} GB RAM" if m.get("memory_gb") else ""
    lines = [
        "# Benchmark results" + (" (quick mode: smoke-test sizes)" if results["quick"] else ""),
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores{mem}; {m['platform']}. Python {m['python']}, "
        f"JAX {m['jax']} (jaxlib {m['jaxlib']}, {m['jax_backend']}), torch "
        f"{m['torch'] or 'not installed'}. The whole run took {results['seconds']:.0f} s"
        + _load_note(m, results.get("load_average_end")),
        "",
        "Times are medians over interleaved repeats (funcgraph, baseline, baseline, funcgraph, "
        "...); absolute times are for information, the ratios (funcgraph / baseline, lower is "
        "better for funcgraph) are the claim. A time ratio is the median of the ratios of "
        "neighbouring repeats, with their first and third quartiles in brackets (the spread "
        "that noise leaves). Wall time is what a user waits; CPU time (all threads of the "
        "process) counts only the work done, so where other processes share the cores its "
        "ratios are the steadier ones.",
        "",
    ]
    if "train_step" in results:
        lines += [*_train_tables(results["train_step"]), ""]
    if "gradcheck" in results:
        lines += [*_gradcheck_table(results["gradcheck"]), ""]
    if "overhead" in results:
        lines += [*_overhead_table(results["overhead"]), ""]
    if "nodes" in results:
        lines += [*_nodes_table(results["nodes"]), ""]
    claims = results.get("targets", [])
    if claims:
        lines += ["## Targets", ""]
        lines += _table(
            ["claim", "ratio", "target", ""],
            [
                [c["claim"], _ratio(c["ratio"]), f"≤ {c['target']}", _met(c["met"])]
                for c in claims
            ],
        )
        lines.append("")
    return "\n".join(lines)


def to_json(results: dict[str, Any]) -> str:
    """The results as indented JSON (non-finite numbers become null)."""

    def clean(x: Any) -> Any:
        if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(results), indent=2, ensure_ascii=False) + "\n"
