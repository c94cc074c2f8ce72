"""The example scripts run and print the lecture's numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_lecture_circuit_prints_the_forward_value_and_the_plus_sign():
    out = run_example("lecture_circuit.py")
    assert "f(W) = 21" in out
    for line in ["df/dW0 = +6", "df/dW1 = +1.5", "df/dW2 = +10.5", "df/dW3 = +1.5"]:
        assert line in out
    assert "-10.5" not in out
    assert "jax.grad of the pure forward: True" in out


@pytest.mark.parametrize("header", ["gate by gate", "fused sigmoid"])
def test_sigmoid_neuron_gives_the_lecture_numbers_both_ways(header):
    out = run_example("sigmoid_neuron.py")
    block = out.split(header, 1)[1]
    assert "f     = 0.73" in block
    assert "df/dw = [-0.2, -0.39, 0.2]" in block
    assert "df/dx = [0.39, -0.59]" in block
    assert "same gradients both ways: True" in out
