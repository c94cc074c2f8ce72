"""The benchmark command runs end to end in quick mode and writes complete results.

These are not timed tests: they prove the command works and that every section reports what it
should (numbers where ratios belong, agreement between the two sides it compares). The ratios'
values at quick sizes mean nothing and are not asserted.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import gradcheck, report, timing  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--out",
            str(out),
            "--sections",
            "train_step,gradcheck,overhead,nodes",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    return results, (out / "results.md").read_text()


def _is_ratio(x: object) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


def test_quick_run_has_every_section(quick_run: tuple[dict, str]) -> None:
    results, page = quick_run
    assert results["quick"] is True
    for section in ("machine", "train_step", "gradcheck", "overhead", "targets"):
        assert section in results
    assert results["machine"]["cores"] >= 1
    for heading in ("Train-step time", "Compiled temporary memory", "Gradient-check", "overhead"):
        assert heading in page


def test_train_steps_compare_the_same_math(quick_run: tuple[dict, str]) -> None:
    rows = quick_run[0]["train_step"]
    assert [r["network"].split()[0] for r in rows] == ["MLP", "LeNet", "Transformer"]
    for r in rows:
        assert _is_ratio(r["time_ratio"]) and _is_ratio(r["memory_ratio"])
        assert _is_ratio(r["cpu_ratio"])
        assert r["funcgraph_temp_bytes"] > 0 and r["baseline_temp_bytes"] > 0
        # The baseline must compute what funcgraph computes, or the ratio compares nothing.
        assert r["gradient_max_relative_difference"] < 1e-4
        assert r["loss_difference"] < 1e-4
    claims = {c["claim"] for c in quick_run[0]["targets"]}
    assert len(claims) == 7  # three steps' wall and CPU times, the transformer block's memory


def test_gradcheck_rows(quick_run: tuple[dict, str]) -> None:
    section = quick_run[0]["gradcheck"]
    rows = {r["checker"]: r for r in section["rows"]}
    assert set(rows) == set(gradcheck.CHECKERS)
    for name in ("fg.check", "jax check_grads"):
        r = rows[name]
        assert "error" not in r and "skipped" not in r, r
        assert r["passes_correct"] is True
        assert r["first_s"] > 0
        assert r["peak_bytes"] is None or r["peak_bytes"] >= 0
    # funcgraph's checker must catch the planted 1.001 error even at smoke-test sizes.
    assert rows["fg.check"]["catches_planted"] is True
    for name in ("torch gradcheck fast", "torch gradcheck slow"):
        r = rows[name]
        if section["torch_available"]:
            assert r.get("passes_correct") is True, r
        else:
            assert "torch is not installed" in r["skipped"]


def test_overhead_rows(quick_run: tuple[dict, str]) -> None:
    section = quick_run[0]["overhead"]
    assert section["gradients_agree"] is True
    assert section["applications"] == 40
    assert [r["what"] for r in section["rows"]] == [
        "trace",
        "backward: compile",
        "backward: run",
    ]
    assert all(_is_ratio(r["ratio"]) for r in section["rows"])


def test_node_breakdown_rows(quick_run: tuple[dict, str]) -> None:
    rows = quick_run[0]["nodes"]
    names = [r["node"].split()[0] for r in rows]
    assert names == ["attention", "layer_norm", "gelu", "dense", "conv2d", "max_pool2d"]
    for r in rows:
        assert _is_ratio(r["time_ratio"])
        # Autodiff may need no scratch memory at all (then there is no ratio).
        assert r["memory_ratio"] is None or r["memory_ratio"] >= 0
    assert "Node by node" in quick_run[1]


def test_overhead_chain_has_the_requested_number_of_nodes() -> None:
    import jax.numpy as jnp

    import funcgraph as fg
    from benchmarks.overhead import chain

    x = jnp.ones((3,), jnp.float32)
    for n in (1, 2, 4, 10, 1000):
        graph = fg.trace(lambda x, n=n: chain(x, applications=n), x)
        assert len(graph.hand_applications) == n


def test_interleaved_alternates_sides_and_takes_medians() -> None:
    calls: list[str] = []

    def side(name: str):
        def fn() -> int:
            calls.append(name)
            return 0

        return fn

    t = timing.interleaved({"a": side("a"), "b": side("b")}, repeats=4, max_inner=1)
    assert len(t["a"].samples) == len(t["b"].samples) == 4
    assert len(t["a"].cpu_samples) == 4 and all(c >= 0 for c in t["a"].cpu_samples)
    for name in ("a", "b"):
        s = sorted(t[name].samples)
        assert t[name].median == pytest.approx((s[1] + s[2]) / 2)
    timed = calls[2:]  # after one warm-up call each
    assert timed == ["a", "b", "b", "a", "a", "b", "b", "a"]


def test_temp_bytes_counts_an_intermediate() -> None:
    import jax.numpy as jnp

    x = jnp.ones((256, 256), jnp.float32)
    # The (256, 256) product must live somewhere before its sum is taken.
    assert timing.temp_bytes(lambda a: jnp.sum(jnp.sin(a @ a) @ a), x) >= 256 * 256 * 4


def test_paired_ratio_pairs_neighbouring_repeats() -> None:
    a = timing.Timing(0.0, (2.0, 4.0, 8.0), 1, (1.0, 1.0, 1.0))
    b = timing.Timing(0.0, (1.0, 8.0, 2.0), 1, (2.0, 2.0, 2.0))
    r = timing.paired_ratio(a, b)
    # Ratios 2, 0.5, 4: their median, not the ratio of the medians (4 / 2).
    assert r.median == 2.0 and r.low == 1.25 and r.high == 3.0
    assert timing.paired_ratio(a, b, cpu=True) == (0.5, 0.5, 0.5)


def test_jacobian_bytes_counts_both_jacobians() -> None:
    batch, n = 3, 5
    inputs = batch * n + n * n + n
    outputs = batch * n
    assert gradcheck.jacobian_bytes(n, batch) == 2 * 8 * inputs * outputs


def test_write_atomic_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "r.json"
    report.write_atomic(path, "first")
    report.write_atomic(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_doc_page_keeps_the_hand_written_analysis(tmp_path: Path) -> None:
    from benchmarks.run import ANALYSIS_MARKER, doc_page

    path = tmp_path / "benchmarks.md"
    first = doc_page("# Benchmark results\n\nold table\n", path)
    assert "old table" in first and first.rstrip().endswith(ANALYSIS_MARKER)
    path.write_text(first + "\nWhy the target is missed.\n")
    second = doc_page("# Benchmark results\n\nnew table\n", path)
    assert "new table" in second and "old table" not in second
    assert second.endswith(ANALYSIS_MARKER + "\n\nWhy the target is missed.\n")
