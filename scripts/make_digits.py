"""Build `funcgraph/data/digits.npz` from scikit-learn's bundled digits (run once, offline).

The 1,797 8x8 images (values 0..16) are split once, stratified by class with a fixed seed, into
1,437 training and 360 test images, so every user of `funcgraph.datasets.load_digits` trains and
reports on the same split without needing scikit-learn.

Usage: `python scripts/make_digits.py` (needs the `demo` extra: scikit-learn).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

OUT = Path(__file__).resolve().parent.parent / "funcgraph" / "data" / "digits.npz"
SEED = 0
TEST_SIZE = 360


def main() -> None:
    digits = load_digits()
    images = digits.images.astype(np.uint8)  # integers 0..16, exactly representable
    labels = digits.target.astype(np.uint8)
    assert np.array_equal(images.astype(np.float64), digits.images)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=TEST_SIZE, random_state=SEED, stratify=labels
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUT, train_images=x_train, train_labels=y_train, test_images=x_test, test_labels=y_test
    )
    print(f"wrote {OUT}: {len(x_train)} train, {len(x_test)} test images")


if __name__ == "__main__":
    main()
