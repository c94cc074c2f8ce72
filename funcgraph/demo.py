"""The main demo: check the hand-written gradients of two models, then train them on real data.

`funcgraph demo` (or `funcgraph.demo.run()`) shows the whole story in one command:

1. the gradient check of every node in an MLP and a small CNN, at their initial parameters on a
   batch of digits: each hand-written backward rule against autodiff of the pure forward and
   the randomized adjoint test, per model and per node application;
2. training of both models on scikit-learn's digits (bundled, offline) with optax, through
   those same hand-written rules, with progress bars and the test accuracy against the targets
   (MLP $\\ge 97\\%$, CNN $\\ge 98\\%$);
3. the loss curves, saved as an image.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax

from funcgraph import nn, nodes
from funcgraph.datasets import DIGITS_CLASSES, load_digits, random_shift
from funcgraph.train import History, accuracy, fit, plot_loss

__all__ = ["CNN_TARGET", "MLP_TARGET", "DemoResult", "cnn_model", "mlp_model", "run"]

MLP_TARGET = 0.97
CNN_TARGET = 0.98
_SEED = 0
_CHECK_BATCH = 4


def mlp_model() -> nn.Layer:
    """The demo's MLP: 64 pixels, 512 hidden ReLU units with dropout 0.3, 10 logits."""
    return nn.mlp([64, 512, DIGITS_CLASSES], dropout_rate=0.3)


def cnn_model() -> nn.Layer:
    """The demo's CNN: two 3x3 conv + ReLU + 2x2 max-pool stages (32, 64 channels), a 128-unit
    dense layer, dropout 0.3, 10 logits."""
    return nn.cnn(DIGITS_CLASSES, channels=(32, 64), hidden=(128,), dropout_rate=0.3)


@dataclasses.dataclass
class DemoResult:
    """One trained model of the demo.

    **Attributes:** `name`; `accuracy` (test); `target`; `seconds` (training and evaluation);
    `history` (the [`funcgraph.train.History`][]); `check_ok` (the gradient check passed).
    """

    name: str
    accuracy: float
    target: float
    seconds: float
    history: History
    check_ok: bool

    @property
    def met(self) -> bool:
        """Whether the test accuracy reached the target."""
        return self.accuracy >= self.target


def _loss(model: nn.Layer, *, augment: bool = False) -> Callable[..., Any]:
    """Softmax cross-entropy of the model; with a key (training), dropout is on and, with
    `augment`, the images are shifted by up to a pixel."""

    def loss(params: Any, x: Any, labels: Any, key: Any = None) -> Any:
        if key is not None and augment:
            shift_key, key = jax.random.split(key)
            x = random_shift(x, shift_key)
        return nodes.softmax_cross_entropy(model.apply(params, x, key=key), labels)

    return loss


def _check(name: str, model: nn.Layer, params: Any, x: np.ndarray, y: np.ndarray) -> bool:
    import funcgraph as fg

    loss = _loss(model)

    # The batch is closed over, so the report's rows are the parameters and the nodes.
    def check_loss(params: Any) -> Any:
        return loss(params, x, y)

    check_loss.__name__ = f"{name.lower()}_loss"
    check_loss.__qualname__ = check_loss.__name__
    report = fg.check(check_loss, params, seeds=1, contracts=False, oracles=("autodiff", "adjoint"))
    print(report)
    print()
    return bool(report.ok)


def _train(
    name: str,
    model: nn.Layer,
    params: Any,
    layout: str,
    *,
    epochs: int,
    key: jax.Array,
    progress: bool,
) -> tuple[float, float, History]:
    x, y = load_digits("train", layout=layout)  # type: ignore[arg-type]
    xt, yt = load_digits("test", layout=layout)  # type: ignore[arg-type]
    batch_size = 32
    steps = epochs * (len(x) // batch_size)
    optimizer = optax.adam(optax.cosine_decay_schedule(3e-3, steps))
    t0 = time.perf_counter()
    _, history = fit(
        _loss(model, augment=layout == "image"),
        params,
        optimizer,
        (x, y),
        key=key,
        epochs=epochs,
        batch_size=batch_size,
        eval_data=(xt, yt),
        metrics={"accuracy": accuracy(model.apply)},
        train_metrics=False,
        num_classes=DIGITS_CLASSES,
        progress=progress,
        desc=name,
    )
    return history["eval_accuracy"][-1], time.perf_counter() - t0, history


def run(
    quick: bool = False,
    progress: bool = True,
    plot: str | None = "funcgraph-demo-loss.png",
) -> int:
    """Run the demo: gradient checks, training of an MLP and a CNN on digits, the loss plot.

    **Arguments:**

    - `quick`: train for a few epochs only (seconds; accuracy targets are reported but not
      required).
    - `progress`: show progress bars.
    - `plot`: where to save the loss curves (`None`: no plot).

    **Returns:** the exit code: 0 when every gradient check passed and (unless `quick`) both
    models reached their targets, 1 otherwise.
    """
    key = jax.random.key(_SEED)
    k_mlp, k_cnn, k_fit_mlp, k_fit_cnn = jax.random.split(key, 4)
    models = [
        ("MLP", mlp_model(), "flat", MLP_TARGET, k_mlp, k_fit_mlp, 3 if quick else 30),
        ("CNN", cnn_model(), "image", CNN_TARGET, k_cnn, k_fit_cnn, 2 if quick else 30),
    ]
    print("funcgraph demo: hand-written gradients, checked against autodiff, then trained")
    print("on scikit-learn's digits (1,437 training and 360 test images of 8x8 pixels).\n")

    print("[1/3] Gradient check of every node in both models (hand-written backward vs")
    print(f"      autodiff of the pure forward, and the adjoint test) on {_CHECK_BATCH} digits:\n")
    params = {}
    checks = {}
    for name, model, layout, _, k_init, _, _ in models:
        x, y = load_digits("train", layout=layout)  # type: ignore[arg-type]
        _, params[name] = model.init(k_init, x[:1].shape)
        checks[name] = _check(name, model, params[name], x[:_CHECK_BATCH], y[:_CHECK_BATCH])

    print("[2/3] Training with optax (Adam, cosine decay) through those hand-written rules:\n")
    results = []
    for name, model, layout, target, _, k_fit, epochs in models:
        acc, seconds, history = _train(
            name, model, params[name], layout, epochs=epochs, key=k_fit, progress=progress
        )
        results.append(DemoResult(name, acc, target, seconds, history, checks[name]))
    print()
    for r in results:
        verdict = "ok" if r.met else ("below target (quick mode)" if quick else "BELOW TARGET")
        print(
            f"  {r.name}: test accuracy {100 * r.accuracy:.1f}% "
            f"(target >= {100 * r.target:.0f}%) {verdict}, trained in {r.seconds:.1f} s"
        )
    print()

    if plot is not None:
        titles = {f"{r.name} on digits: test accuracy {100 * r.accuracy:.1f}%": r for r in results}
        path = plot_loss({title: r.history for title, r in titles.items()}, plot)
        print(f"[3/3] Loss curves written to {path}")
    else:
        print("[3/3] Loss plot skipped")

    checks_ok = all(checks.values())
    targets_ok = quick or all(r.met for r in results)
    if not checks_ok:
        print("FAILED: a gradient check did not pass (see the report above)")
    if not targets_ok:
        print("FAILED: a model did not reach its accuracy target")
    return 0 if checks_ok and targets_ok else 1
