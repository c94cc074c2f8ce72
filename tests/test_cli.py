"""The `funcgraph` command: exit codes of `check`, argument handling, `--version`."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import funcgraph as fg
from funcgraph.cli import main

GOOD = """
import jax
import funcgraph as fg


@fg.node(example=lambda key: (jax.random.normal(key, (3,)),))
def cube(x):
    return x ** 3


@cube.backward
def _cube_backward(x, out, g):
    return 3 * x * x * g


@fg.example(lambda key: (jax.random.normal(key, (4,)),))
def loss(w):
    return jax.numpy.sum(cube(w))


def no_examples(w):
    return cube(w)
"""

BAD = (
    GOOD
    + """

@fg.node(example=lambda key: (jax.random.normal(key, (3,)),))
def wrong_sin(x):
    return jax.numpy.sin(x)


@wrong_sin.backward
def _wrong_sin_backward(x, out, g):
    return -jax.numpy.cos(x) * g
"""
)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "good_nodes.py").write_text(textwrap.dedent(GOOD))
    (tmp_path / "bad_nodes.py").write_text(textwrap.dedent(BAD))
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "empty.py").write_text("x = 1\n")
    return tmp_path


FAST = ["--seeds", "1"]


def test_check_passes_with_exit_code_0(files: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check", str(files / "good_nodes.py"), *FAST]) == 0
    out = capsys.readouterr().out
    assert "fg.check(cube): all" in out and "fg.check(loss): all" in out
    assert "funcgraph check: all 2 passed" in out


def test_check_of_one_function_at_its_examples(files: Path, capsys) -> None:
    assert main(["check", f"{files / 'good_nodes.py'}:loss", *FAST]) == 0
    assert "cube[" in capsys.readouterr().out  # blame rows for the node inside loss


def test_check_fails_with_exit_code_1_and_prints_the_table(files: Path, capsys) -> None:
    assert main(["check", str(files / "bad_nodes.py"), *FAST, "--dtype", "float32"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  wrong_sin" in out and "1 of 3 checked FAILED" in out
    assert main(["check", f"{files / 'bad_nodes.py'}:wrong_sin", "-q", *FAST]) == 1
    assert "FAIL wrong_sin.x autodiff" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing.py", "no such file"),
        ("broken.py", "RuntimeError: boom"),
        ("empty.py", "defines no node"),
        ("good_nodes.py:nope", "has no attribute"),
        ("good_nodes.py:no_examples", "declares no example arguments"),
    ],
)
def test_loading_errors_exit_with_2(files: Path, capsys, target: str, message: str) -> None:
    assert main(["check", str(files / target)]) == 2
    assert message in capsys.readouterr().err


def test_usage_errors_exit_with_2(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["check", "x.py", "--dtype", "int8"])
    assert info.value.code == 2
    assert main(["check", "x.py", "--seeds", "0"]) == 2


def test_version_and_help_say_the_file_is_run(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and fg.__version__ in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "imports it: its top-level code runs" in help_text


def test_draw_and_demo_are_delegated(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    # (`funcgraph.draw` is also the name of the function fg.draw: go through the module.)
    monkeypatch.setattr(
        importlib.import_module("funcgraph.draw"),
        "cli_draw",
        lambda target, output, expand: calls.append(("draw", target, output, expand)) or 0,
    )
    monkeypatch.setattr(
        importlib.import_module("funcgraph.demo"),
        "run",
        lambda quick, progress, **kw: calls.append(("demo", quick, progress, kw)) or 3,
    )
    assert main(["draw", "f.py:loss", "-o", "out.svg", "--expand"]) == 0
    assert main(["demo", "--quick", "--no-progress", "--plot", "p.png"]) == 3
    assert main(["demo", "--no-plot"]) == 3
    assert calls == [
        ("draw", "f.py:loss", "out.svg", True),
        ("demo", True, False, {"plot": "p.png"}),
        ("demo", False, True, {"plot": None}),
    ]


def test_console_script_exit_code(files: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "funcgraph.cli", "check", str(files / "missing.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "no such file" in done.stderr
