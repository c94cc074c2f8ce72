r"""Activations: elementwise nonlinearities and the softmax family.

Where the local gradient is a function of the output (tanh, softmax, log-softmax, relu), the node
saves only the output, so the backward keeps one array alive instead of two.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

from funcgraph.node import Example, node
from funcgraph.nodes._util import away_from, normal

__all__ = ["gelu", "leaky_relu", "log_softmax", "relu", "softmax", "softplus", "tanh"]


# Elementwise nodes work at any shape: taking `shape=` lets the registry test draw shapes.
def _one(key: jax.Array, shape: tuple[int, ...] = (3, 4)) -> tuple[jax.Array]:
    return (normal(key, shape),)


def _off_zero(key: jax.Array, shape: tuple[int, ...] = (3, 4)) -> tuple[jax.Array]:
    return (away_from(key, shape, gap=0.1),)


def _min_abs(x, **_: object) -> float:
    return float(jnp.min(jnp.abs(x)))


@node(save="output", example=_off_zero, kinks=_min_abs)
def relu(x):
    r"""Rectified linear unit; saves only its output.

    **Forward:** $y = \max(x, 0)$

    **Backward:** $\frac{\partial L}{\partial x} = g\,[y > 0]$ (the gradient at $x = 0$ is taken
    to be 0, as `jax.nn.relu` does; $x = 0$ is the kink).
    """
    return jnp.where(x > 0, x, jnp.zeros_like(x))


@relu.backward
def _relu_backward(x, out, g):
    return jnp.where(out > 0, g, jnp.zeros_like(g))


@node(save="inputs", example=_off_zero, kinks=_min_abs)
def leaky_relu(x, *, slope: float = 0.01):
    r"""Leaky ReLU with negative-side `slope` (static).

    **Forward:** $y = x$ if $x > 0$ else $a x$ (with $a$ = `slope`)

    **Backward:** $\frac{\partial L}{\partial x} = g$ if $x > 0$ else $a g$ ($x = 0$ is the kink;
    the gradient there is $a g$).
    """
    return jnp.where(x > 0, x, x * jnp.asarray(slope, dtype=jnp.result_type(x)))


@leaky_relu.backward
def _leaky_relu_backward(x, out, g, *, slope: float = 0.01):
    return jnp.where(x > 0, g, g * jnp.asarray(slope, dtype=g.dtype))


@node(save="output", example=_one)
def tanh(x):
    r"""Hyperbolic tangent; saves only its output.

    **Forward:** $y = \tanh x$

    **Backward:** $\frac{\partial L}{\partial x} = g\,(1 - y^2)$
    """
    return jnp.tanh(x)


@tanh.backward
def _tanh_backward(x, out, g):
    return g * (1 - out * out)


@node(save="inputs", example=_one)
def softplus(x):
    r"""Softplus, a smooth ReLU, computed stably.

    **Forward:** $y = \log(1 + e^x)$

    **Backward:** $\frac{\partial L}{\partial x} = g\, \sigma(x)$
    """
    return jnp.logaddexp(x, jnp.zeros_like(x))


@softplus.backward
def _softplus_backward(x, out, g):
    return g * jax.nn.sigmoid(x)


_GELU_C = math.sqrt(2 / math.pi)
_GELU_A = 0.044715


@node(
    save="inputs",
    example=[_one, lambda key: Example(_one(key), {"approximate": False})],
)
def gelu(x, *, approximate: bool = True):
    r"""Gaussian error linear unit; `approximate=True` uses the tanh form (as GPT-2 does).

    **Forward:** exact: $y = x\,\Phi(x) = \tfrac12 x\,(1 + \operatorname{erf}(x/\sqrt2))$;
    approximate: $y = \tfrac12 x\,(1 + \tanh u)$ with $u = c\,(x + a x^3)$,
    $c = \sqrt{2/\pi}$, $a = 0.044715$.

    **Backward:** exact: $\frac{\partial L}{\partial x} = g\,(\Phi(x) + x\,\varphi(x))$;
    approximate: $\frac{\partial L}{\partial x} = g\,\big(\tfrac12 (1 + t)
    + \tfrac12 x\,(1 - t^2)\, c\,(1 + 3 a x^2)\big)$ with $t = \tanh u$.
    """
    if approximate:
        return 0.5 * x * (1 + jnp.tanh(_GELU_C * (x + _GELU_A * x * x * x)))
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


@gelu.backward
def _gelu_backward(x, out, g, *, approximate: bool = True):
    if approximate:
        t = jnp.tanh(_GELU_C * (x + _GELU_A * x * x * x))
        local = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _GELU_C * (1 + 3 * _GELU_A * x * x)
    else:
        cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
        pdf = jnp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        local = cdf + x * pdf
    return g * local


@node(
    save="output",
    example=[_one, lambda key: Example((normal(key, (3, 5)),), {"axis": 0})],
)
def softmax(x, *, axis: int = -1):
    r"""Softmax along `axis`, computed stably; saves only its output.

    **Forward:** $y_i = \frac{e^{x_i}}{\sum_j e^{x_j}}$

    **Backward:** $\frac{\partial L}{\partial x_i} = y_i \big(g_i - \sum_j g_j y_j\big)$
    """
    m = jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    e = jnp.exp(x - m)
    return e / jnp.sum(e, axis=axis, keepdims=True)


@softmax.backward
def _softmax_backward(x, out, g, *, axis: int = -1):
    return out * (g - jnp.sum(g * out, axis=axis, keepdims=True))


@node(
    save="output",
    example=[_one, lambda key: Example((normal(key, (3, 5)),), {"axis": 0})],
)
def log_softmax(x, *, axis: int = -1):
    r"""Log-softmax along `axis`, computed stably; saves only its output.

    **Forward:** $y_i = x_i - \log \sum_j e^{x_j}$

    **Backward:** $\frac{\partial L}{\partial x_i} = g_i - e^{y_i} \sum_j g_j$
    """
    m = jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    shifted = x - m
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))


@log_softmax.backward
def _log_softmax_backward(x, out, g, *, axis: int = -1):
    return g - jnp.exp(out) * jnp.sum(g, axis=axis, keepdims=True)
