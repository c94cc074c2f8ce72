r"""Gates: the elementwise nodes of the backprop lecture's circuits.

Binary gates broadcast like `jax.numpy`; their backward sums each gradient back to its input's
shape ([`funcgraph.nodes.unbroadcast`][]). The lecture's intuitions hold: the add gate
*distributes* the gradient, the mul gate *swaps* its inputs, the max gate *routes* it.

Rules that only need an input's *shape* still save the inputs: under `jax.jit` a residual the
rule never reads is dead code and XLA drops it, so it costs no memory.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from funcgraph.node import Example, node
from funcgraph.nodes._util import away_from, grad_like, normal, uniform

__all__ = [
    "add",
    "div",
    "exp",
    "log",
    "maximum",
    "mul",
    "power",
    "reciprocal",
    "scale",
    "sigmoid",
    "square",
]


def _pair(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    k1, k2 = jax.random.split(key)
    return normal(k1, (3, 4)), normal(k2, (4,))


def _one(key: jax.Array, shape: tuple[int, ...] = (3, 4)) -> tuple[jax.Array]:
    return (normal(key, shape),)


def _positive(key: jax.Array, shape: tuple[int, ...] = (3, 4)) -> tuple[jax.Array]:
    return (uniform(key, shape, minval=0.5, maxval=2.0),)


def _pair_nonzero_y(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    k1, k2 = jax.random.split(key)
    return normal(k1, (3, 4)), away_from(k2, (4,), gap=0.5)


def _pair_apart(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    k1, k2 = jax.random.split(key)
    x = normal(k1, (3, 4))
    # Keep y at least 0.1 from x so finite differences do not cross the max gate's kink.
    return x, away_from(k2, (3, 4), point=np.asarray(x), gap=0.1)


# -- binary gates ---------------------------------------------------------------------------


@node(save="inputs", example=_pair)
def add(x, y):
    r"""Add gate (broadcasting).

    **Forward:** $z = x + y$

    **Backward:** $\frac{\partial L}{\partial x} = g,\quad \frac{\partial L}{\partial y} = g$,
    each summed over the axes it was broadcast along: the add gate distributes the gradient.
    """
    return x + y


@add.backward
def _add_backward(x, y, out, g):
    return grad_like(g, x), grad_like(g, y)


@node(example=_pair)
def mul(x, y):
    r"""Multiply gate (broadcasting).

    **Forward:** $z = x y$

    **Backward:** $\frac{\partial L}{\partial x} = g\, y,\quad
    \frac{\partial L}{\partial y} = g\, x$
    (summed over broadcast axes): the mul gate swaps its inputs.
    """
    return x * y


@mul.backward
def _mul_backward(x, y, out, g):
    return grad_like(g * y, x), grad_like(g * x, y)


def _maximum_kinks(x, y) -> float:
    # The max-norm distance to the tie x == y is half the gap (both inputs may move).
    return float(jnp.min(jnp.abs(x - y))) / 2


@node(save="inputs", example=_pair_apart, kinks=_maximum_kinks)
def maximum(x, y):
    r"""Max gate (broadcasting): routes the gradient to the larger input.

    **Forward:** $z = \max(x, y)$

    **Backward:** $\frac{\partial L}{\partial x} = g\,[x > y] + \tfrac12 g\,[x = y],\quad
    \frac{\partial L}{\partial y} = g\,[y > x] + \tfrac12 g\,[x = y]$.

    **Ties:** where $x = y$ the gradient is split equally between the two inputs (as
    `jax.grad(jnp.maximum)` does); $x = y$ is the gate's kink.
    """
    return jnp.maximum(x, y)


@maximum.backward
def _maximum_backward(x, y, out, g):
    tie = 0.5 * g
    gx = jnp.where(x > y, g, jnp.where(x == y, tie, jnp.zeros_like(g)))
    gy = jnp.where(y > x, g, jnp.where(x == y, tie, jnp.zeros_like(g)))
    return grad_like(gx, x), grad_like(gy, y)


@node(example=_pair_nonzero_y)
def div(x, y):
    r"""Divide gate (broadcasting).

    **Forward:** $z = x / y$

    **Backward:** $\frac{\partial L}{\partial x} = \frac{g}{y},\quad
    \frac{\partial L}{\partial y} = -\frac{g\, z}{y}$ (summed over broadcast axes).
    """
    return x / y


@div.backward
def _div_backward(x, y, out, g):
    gx = g / y
    return grad_like(gx, x), grad_like(-gx * out, y)


# -- unary gates ----------------------------------------------------------------------------


@node(example=lambda key: (away_from(key, (3, 4), gap=0.5),))
def reciprocal(x):
    r"""Reciprocal gate.

    **Forward:** $z = 1 / x$

    **Backward:** $\frac{\partial L}{\partial x} = -g\, z^2$
    """
    return 1 / x


@reciprocal.backward
def _reciprocal_backward(x, out, g):
    return -g * out * out


@node(save="none", example=lambda key: Example(_one(key), {"c": 2.5}))
def scale(x, *, c: float):
    r"""Multiply by a constant `c` (static, not differentiated).

    **Forward:** $z = c\, x$

    **Backward:** $\frac{\partial L}{\partial x} = c\, g$
    """
    return x * jnp.asarray(c, dtype=jnp.result_type(x))


@scale.backward
def _scale_backward(x, out, g, *, c: float):
    return g * jnp.asarray(c, dtype=g.dtype)


@node(save="inputs", example=_one)
def square(x):
    r"""Square gate.

    **Forward:** $z = x^2$

    **Backward:** $\frac{\partial L}{\partial x} = 2 x\, g$
    """
    return x * x


@square.backward
def _square_backward(x, out, g):
    return 2 * x * g


@node(example=lambda key: Example(_positive(key), {"p": 1.5}))
def power(x, *, p: float):
    r"""Power with a constant exponent `p` (static). For non-integer `p`, $x$ must be positive.

    **Forward:** $z = x^p$

    **Backward:** $\frac{\partial L}{\partial x} = p\, x^{p-1} g$
    """
    return x ** jnp.asarray(p, dtype=jnp.result_type(x))


@power.backward
def _power_backward(x, out, g, *, p: float):
    pp = jnp.asarray(p, dtype=g.dtype)
    return g * pp * x ** (pp - 1)


@node(save="output", example=_one)
def exp(x):
    r"""Exponential gate; saves only its output.

    **Forward:** $z = e^x$

    **Backward:** $\frac{\partial L}{\partial x} = g\, z$
    """
    return jnp.exp(x)


@exp.backward
def _exp_backward(x, out, g):
    return g * out


@node(save="inputs", example=_positive)
def log(x):
    r"""Natural logarithm gate ($x > 0$).

    **Forward:** $z = \ln x$

    **Backward:** $\frac{\partial L}{\partial x} = g / x$
    """
    return jnp.log(x)


@log.backward
def _log_backward(x, out, g):
    return g / x


@node(save="output", example=_one)
def sigmoid(x):
    r"""Logistic sigmoid, fused into one node that saves only its output.

    The lecture builds it from `exp`, `add` and `reciprocal` gates; lumped, the local gradient
    simplifies to an expression of the output alone.

    **Forward:** $\sigma(x) = \frac{1}{1 + e^{-x}}$

    **Backward:** $\frac{\partial L}{\partial x} = g\, \sigma(x)\,(1 - \sigma(x))$
    """
    return jax.nn.sigmoid(x)


@sigmoid.backward
def _sigmoid_backward(x, out, g):
    return g * out * (1 - out)
