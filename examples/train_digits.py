"""Train a small CNN on the bundled digits, with a checkpoint you can interrupt and resume.

The story of the demo, in the open: build a model from funcgraph layers, check its hand-written
gradients once, then train it with optax through those rules. Stop it with Ctrl-C at any time
and run it again: it resumes from the last epoch's checkpoint and ends exactly where an
uninterrupted run would.

Run: python examples/train_digits.py [--epochs N] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import optax

import funcgraph as fg
from funcgraph.datasets import DIGITS_CLASSES, load_digits, random_shift


def main(epochs: int, out: Path) -> None:
    x, y = load_digits("train", layout="image")
    x_test, y_test = load_digits("test", layout="image")

    model = fg.nn.cnn(DIGITS_CLASSES, channels=(32, 64), hidden=(128,), dropout_rate=0.3)
    init_key, run_key = jax.random.split(jax.random.key(0))
    _, params = model.init(init_key, x[:1].shape)

    def loss(params, images, labels, key=None):
        if key is not None:  # training: shift the images a little, and use dropout
            shift_key, key = jax.random.split(key)
            images = random_shift(images, shift_key)
        return fg.nodes.softmax_cross_entropy(model.apply(params, images, key=key), labels)

    # The hand-written rules of every node in the model, against autodiff, on a few digits.
    report = fg.check(lambda p: loss(p, x[:4], y[:4]), params, seeds=1, contracts=False)
    print(report.summary())

    steps = epochs * (len(x) // 32)
    optimizer = optax.adam(optax.cosine_decay_schedule(3e-3, steps))
    out.mkdir(parents=True, exist_ok=True)
    state, history = fg.fit(
        loss,
        params,
        optimizer,
        (x, y),
        key=run_key,
        epochs=epochs,
        batch_size=32,
        eval_data=(x_test, y_test),
        metrics={"accuracy": fg.train.accuracy(model.apply)},
        num_classes=DIGITS_CLASSES,
        desc="CNN",
        checkpoint=out / "digits_cnn.ckpt",
        plot=out / "digits_cnn_loss.png",
    )
    if history.epochs:
        print(f"epochs {history.epochs[0] + 1}-{history.epochs[-1] + 1} of {epochs}:")
        print(f"  test accuracy {100 * history['eval_accuracy'][-1]:.1f}%")
    print(f"state after {int(state.step)} steps saved in {out / 'digits_cnn.ckpt'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    main(args.epochs, args.out)
