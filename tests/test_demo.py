from __future__ import annotations

import re
from pathlib import Path

import jax
import numpy as np
import pytest

import funcgraph as fg
from funcgraph import demo, nn, nodes
from funcgraph.datasets import load_digits, random_shift


def test_quick_demo_checks_trains_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "loss.png"
    assert demo.run(quick=True, progress=False, plot=str(plot)) == 0
    out = capsys.readouterr().out
    # The gradient check of every node of both models is printed before training.
    assert re.search(r"fg\.check\(mlp_loss\): all \d+ checks passed", out)
    assert re.search(r"fg\.check\(cnn_loss\): all \d+ checks passed", out)
    for node in ("dense", "relu", "conv2d", "max_pool2d", "reshape", "softmax_cross_entropy"):
        assert re.search(rf"^ok\s+{node}\[\d+\]", out, re.MULTILINE), node
    assert out.index("[1/3]") < out.index("fg.check(mlp_loss)") < out.index("[2/3]")
    accuracies = re.findall(r"(MLP|CNN): test accuracy ([\d.]+)%", out)
    assert [name for name, _ in accuracies] == ["MLP", "CNN"]
    assert all(float(a) > 50 for _, a in accuracies)  # even a few epochs learn something
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@fg.node(register=False)
def _relu_wrong_sign(x):
    return nodes.relu.reference(x)


@_relu_wrong_sign.backward
def _relu_wrong_sign_backward(x, out, g):
    return -g * (x > 0).astype(g.dtype)  # the planted bug


def test_demo_fails_when_a_rule_is_wrong(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    buggy = nn.mlp([64, 8, 10], activation_layer=lambda: nn.activation(_relu_wrong_sign))
    monkeypatch.setattr(demo, "mlp_model", lambda: buggy)
    monkeypatch.setattr(demo, "cnn_model", lambda: nn.sequential(nn.flatten(), nn.dense(10)))

    def no_training(name: str, *args: object, **kwargs: object) -> tuple:
        return 0.0, 0.0, fg.train.History()

    monkeypatch.setattr(demo, "_train", no_training)
    assert demo.run(quick=True, progress=False, plot=None) == 1
    out = capsys.readouterr().out
    assert re.search(r"fg\.check\(mlp_loss\): \d+ of \d+ checks FAILED", out)
    assert "_relu_wrong_sign" in out
    assert "FAILED: a gradient check did not pass" in out


def test_random_shift_moves_images_by_at_most_a_pixel(key: jax.Array) -> None:
    x, _ = load_digits("test", layout="image")
    shifted = np.asarray(random_shift(x[:50], key))
    assert shifted.shape == (50, 8, 8, 1) and shifted.dtype == np.float32
    padded = np.pad(x[:50], ((0, 0), (1, 1), (1, 1), (0, 0)))
    for image, out in zip(padded, shifted, strict=True):
        # Each output is one of the nine 8x8 crops of the zero-padded image.
        crops = [image[i : i + 8, j : j + 8] for i in range(3) for j in range(3)]
        assert any(np.array_equal(out, c) for c in crops)
    assert not np.array_equal(shifted, x[:50])
