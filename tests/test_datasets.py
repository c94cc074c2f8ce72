from __future__ import annotations

import numpy as np
import pytest

from funcgraph.datasets import DIGITS_CLASSES, load_digits


def test_digits_shapes_dtypes_and_split() -> None:
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    assert x.shape == (1437, 64) and xt.shape == (360, 64)
    assert x.dtype == np.float32 and y.dtype == np.int32
    assert 0.0 <= x.min() and x.max() == 1.0
    # Stratified: every class appears in both splits in roughly equal numbers.
    assert set(np.unique(y)) == set(range(DIGITS_CLASSES)) == set(np.unique(yt))
    assert np.bincount(yt).min() >= 35


def test_digits_image_layout_matches_flat() -> None:
    flat, y1 = load_digits("test")
    img, y2 = load_digits("test", layout="image", dtype=np.float64)
    assert img.shape == (360, 8, 8, 1) and img.dtype == np.float64
    np.testing.assert_array_equal(img.reshape(360, 64).astype(np.float32), flat)
    np.testing.assert_array_equal(y1, y2)


def test_digits_match_scikit_learn() -> None:
    sklearn = pytest.importorskip("sklearn.datasets")
    ref = sklearn.load_digits()
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    ours = np.concatenate([x, xt]) * 16
    ours_labels = np.concatenate([y, yt])
    # Same multiset of (image, label) rows: sort both by their bytes.
    key = lambda a, b: sorted(map(bytes, np.concatenate([a, b[:, None]], axis=1)))  # noqa: E731
    assert key(ours.astype(np.float64), ours_labels) == key(ref.data, ref.target)


def test_digits_bad_arguments() -> None:
    with pytest.raises(ValueError, match="split"):
        load_digits("validation")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="layout"):
        load_digits(layout="nchw")  # type: ignore[arg-type]
