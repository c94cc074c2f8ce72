"""Datasets that ship inside the package and load offline.

`load_digits` gives scikit-learn's handwritten digits (1,797 grey 8x8 images of the digits 0-9,
from the UCI ML repository), split once with a fixed seed, stratified by class, into 1,437
training and 360 test images. The file `funcgraph/data/digits.npz` is made by
`scripts/make_digits.py` and read with `np.load(..., allow_pickle=False)`.
"""

from __future__ import annotations

from importlib import resources
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DIGITS_CLASSES", "load_digits", "random_shift"]

DIGITS_CLASSES = 10
_MAX_PIXEL = 16.0


def load_digits(
    split: Literal["train", "test"] = "train",
    *,
    layout: Literal["flat", "image"] = "flat",
    dtype: np.dtype | type = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Load the digits images and labels as NumPy arrays.

    Pixels are scaled from $\\{0, \\dots, 16\\}$ to $[0, 1]$.

    **Arguments:**

    - `split`: `"train"` (1,437 images) or `"test"` (360 images).
    - `layout`: `"flat"` gives images of shape `(n, 64)` (for an MLP); `"image"` gives
      `(n, 8, 8, 1)`, NHWC (for a CNN).
    - `dtype`: the floating dtype of the images.

    **Returns:** `(images, labels)`, labels `int32` in `0..9`.
    """
    if split not in ("train", "test"):
        raise ValueError(f"load_digits: split={split!r}, expected 'train' or 'test'")
    if layout not in ("flat", "image"):
        raise ValueError(f"load_digits: layout={layout!r}, expected 'flat' or 'image'")
    source = resources.files("funcgraph").joinpath("data", "digits.npz")
    with source.open("rb") as f, np.load(f, allow_pickle=False) as archive:
        images = archive[f"{split}_images"]
        labels = archive[f"{split}_labels"]
    x = (images.astype(dtype) / np.asarray(_MAX_PIXEL, dtype=dtype)).astype(dtype)
    x = x.reshape(len(x), 64) if layout == "flat" else x.reshape(len(x), 8, 8, 1)
    return x, labels.astype(np.int32)


def random_shift(images: jax.Array, key: jax.Array, *, pixels: int = 1) -> jax.Array:
    r"""Shift each NHWC image by a random whole number of pixels, filling with zeros.

    A cheap data augmentation for small images: every image moves independently by
    $(d_y, d_x) \in \{-p, \dots, p\}^2$. It runs under `jax.jit`.

    **Arguments:**

    - `images`: a batch of shape `(n, height, width, channels)`.
    - `key`: the PRNG key that draws the shifts.
    - `pixels`: the largest shift $p$ along each axis.

    **Returns:** the shifted images, same shape and dtype.
    """
    if images.ndim != 4:
        raise ValueError(f"random_shift: images of shape {images.shape}, expected (n, h, w, c)")
    n, h, w, c = images.shape
    p = pixels
    padded = jnp.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
    offsets = jax.random.randint(key, (n, 2), 0, 2 * p + 1)

    def crop(image: jax.Array, offset: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))

    return jax.vmap(crop)(padded, offsets)
