"""Shared test setup.

Strict dtype promotion (as in Equinox's suite) makes silent upcasts, such as a float32 gradient
quietly becoming float64, fail loudly.
"""

from __future__ import annotations

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(0)
