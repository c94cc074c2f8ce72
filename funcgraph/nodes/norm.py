r"""Normalization layers: batch norm (train and eval mode) and layer norm.

Both train-mode layers save only the normalized input $\hat x$, the inverse standard deviation
$1/\sigma$ and the scale $\gamma$; every other quantity in the backward is rebuilt from them
(e.g. $x - \mu = \hat x\, \sigma$). The well-known simplified input gradient is
$\frac{\partial L}{\partial x} = \frac1\sigma\big(\hat g - \overline{\hat g} - \hat x\,
\overline{\hat g\, \hat x}\big)$ with $\hat g = \gamma g$ and bars meaning means over the
normalized axes.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from funcgraph.errors import ShapeMismatchError
from funcgraph.node import node
from funcgraph.nodes._util import normal, uniform

__all__ = ["batch_norm", "batch_norm_eval", "layer_norm"]


def _check_params(name: str, x, *params) -> None:
    for p in params:
        if tuple(jnp.shape(p)) != (x.shape[-1],):
            raise ShapeMismatchError(
                f"node {name!r}: parameters must have shape ({x.shape[-1]},) (the last axis of "
                f"x {tuple(x.shape)}), got {tuple(jnp.shape(p))}"
            )


def _normalize(x, axes, eps):
    mu = jnp.mean(x, axis=axes, keepdims=True)
    xc = x - mu
    var = jnp.mean(xc * xc, axis=axes, keepdims=True)
    rstd = jax.lax.rsqrt(var + jnp.asarray(eps, dtype=x.dtype))
    return xc * rstd, rstd, mu, var


def _input_grad(ghat, xhat, rstd, axes):
    mean_g = jnp.mean(ghat, axis=axes, keepdims=True)
    mean_gx = jnp.mean(ghat * xhat, axis=axes, keepdims=True)
    return rstd * (ghat - mean_g - xhat * mean_gx)


def _norm_example(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    k1, k2, k3 = jax.random.split(key, 3)
    return normal(k1, (4, 6)), normal(k2, (6,), loc=1.0, scale=0.1), normal(k3, (6,))


# -- layer norm -----------------------------------------------------------------------------


def _layer_norm_save(x, gamma, beta, out, *, eps: float = 1e-5):
    xhat, rstd, _, _ = _normalize(x, -1, eps)
    return xhat, rstd, gamma


@node(save=_layer_norm_save, example=_norm_example)
def layer_norm(x, gamma, beta, *, eps: float = 1e-5):
    r"""Layer normalization over the last axis (size $D$), with scale $\gamma$ and shift $\beta$;
    saves only $\hat x$ and $1/\sigma$ (and $\gamma$).

    **Arguments:**

    - `x`: `(..., D)`.
    - `gamma`, `beta`: `(D,)`.
    - `eps`: added to the variance (static).

    **Returns:** `(..., D)`, like `x`.

    **Forward:** $\mu = \frac1D \sum_d x_d$, $\sigma^2 = \frac1D \sum_d (x_d - \mu)^2$,
    $\hat x = (x - \mu)/\sqrt{\sigma^2 + \epsilon}$, $y = \gamma \hat x + \beta$

    **Backward:** with $\hat g = \gamma g$:
    $\frac{\partial L}{\partial x} = \frac{1}{\sigma}\big(\hat g - \overline{\hat g}
    - \hat x\, \overline{\hat g \hat x}\big)$ (means over the last axis),
    $\frac{\partial L}{\partial \gamma} = \sum_{\text{rows}} g\, \hat x$,
    $\frac{\partial L}{\partial \beta} = \sum_{\text{rows}} g$
    """
    _check_params("layer_norm", x, gamma, beta)
    xhat, _, _, _ = _normalize(x, -1, eps)
    return xhat * gamma + beta


@layer_norm.backward
def _layer_norm_backward(residuals, g, *, eps: float = 1e-5):
    xhat, rstd, gamma = residuals
    rows = tuple(range(g.ndim - 1))
    dx = _input_grad(g * gamma, xhat, rstd, -1)
    return dx, jnp.sum(g * xhat, axis=rows), jnp.sum(g, axis=rows)


# -- batch norm -----------------------------------------------------------------------------


def _batch_norm_save(x, gamma, beta, out, *, eps: float = 1e-5):
    axes = tuple(range(x.ndim - 1))
    xhat, rstd, _, _ = _normalize(x, axes, eps)
    return xhat, rstd, gamma


@node(save=_batch_norm_save, example=_norm_example)
def batch_norm(x, gamma, beta, *, eps: float = 1e-5):
    r"""Batch normalization in training mode: normalizes over every axis but the last (the
    channel axis, size $C$) using the batch's statistics.

    **Arguments:**

    - `x`: `(..., C)`, e.g. `(N, C)` or `(N, H, W, C)`.
    - `gamma`, `beta`: `(C,)`.
    - `eps`: added to the variance (static).

    **Returns:** `(y, batch_mean, batch_var)`: `y` like `x`, the statistics of shape `(C,)`
    (the variance is the biased one, dividing by $N$), so the caller can update running
    averages for [`funcgraph.nodes.batch_norm_eval`][].

    With $N$ the number of entries per channel:

    **Forward:** $\mu = \frac1N \sum x$, $\sigma^2 = \frac1N \sum (x - \mu)^2$,
    $\hat x = (x - \mu)/\sqrt{\sigma^2 + \epsilon}$, $y = \gamma \hat x + \beta$

    **Backward:** with $\hat g = \gamma g_y$ and means over the normalized axes,
    $\frac{\partial L}{\partial x} = \frac{1}{\sigma}\big(\hat g - \overline{\hat g}
    - \hat x\, \overline{\hat g \hat x}\big) + \frac{g_\mu}{N}
    + \frac{2 g_{\sigma^2}}{N} (x - \mu)$,
    $\frac{\partial L}{\partial \gamma} = \sum g_y \hat x$,
    $\frac{\partial L}{\partial \beta} = \sum g_y$ (the last two terms of the input gradient
    carry gradients that reach the returned statistics, usually zero).
    """
    _check_params("batch_norm", x, gamma, beta)
    axes = tuple(range(x.ndim - 1))
    xhat, _, mu, var = _normalize(x, axes, eps)
    return xhat * gamma + beta, mu.reshape(-1), var.reshape(-1)


@batch_norm.backward
def _batch_norm_backward(residuals, g, *, eps: float = 1e-5):
    xhat, rstd, gamma = residuals
    gy, gmean, gvar = g
    axes = tuple(range(gy.ndim - 1))
    n = math.prod(gy.shape[:-1])
    dx = _input_grad(gy * gamma, xhat, rstd, axes)
    # x - mu = xhat / rstd; mean and (biased) variance have gradients 1/N and 2 (x - mu) / N.
    dx = dx + gmean / n + (2 / n) * gvar * (xhat / rstd)
    return dx, jnp.sum(gy * xhat, axis=axes), jnp.sum(gy, axis=axes)


def _eval_example(key: jax.Array):
    k1, k2 = jax.random.split(key)
    x, gamma, beta = _norm_example(k1)
    k3, k4 = jax.random.split(k2)
    return x, gamma, beta, normal(k3, (6,)), uniform(k4, (6,), minval=0.5, maxval=2.0)


@node(save="inputs", example=_eval_example)
def batch_norm_eval(x, gamma, beta, mean, var, *, eps: float = 1e-5):
    r"""Batch normalization in evaluation mode, with given (running) statistics. All five
    inputs are differentiable.

    **Arguments:**

    - `x`: `(..., C)`.
    - `gamma`, `beta`, `mean`, `var`: `(C,)`.
    - `eps`: added to the variance (static).

    **Returns:** like `x`.

    **Forward:** $r = 1/\sqrt{v + \epsilon}$, $\hat x = (x - m)\, r$, $y = \gamma \hat x + \beta$

    **Backward:** $\frac{\partial L}{\partial x} = g \gamma r$,
    $\frac{\partial L}{\partial \gamma} = \sum g \hat x$,
    $\frac{\partial L}{\partial \beta} = \sum g$,
    $\frac{\partial L}{\partial m} = -\gamma r \sum g$,
    $\frac{\partial L}{\partial v} = -\tfrac12 \gamma r^3 \sum g\,(x - m)$
    """
    _check_params("batch_norm_eval", x, gamma, beta, mean, var)
    rstd = jax.lax.rsqrt(var + jnp.asarray(eps, dtype=x.dtype))
    return (x - mean) * rstd * gamma + beta


@batch_norm_eval.backward
def _batch_norm_eval_backward(x, gamma, beta, mean, var, out, g, *, eps: float = 1e-5):
    axes = tuple(range(x.ndim - 1))
    rstd = jax.lax.rsqrt(var + jnp.asarray(eps, dtype=x.dtype))
    xc = x - mean
    sum_g = jnp.sum(g, axis=axes)
    sum_gxc = jnp.sum(g * xc, axis=axes)
    return (
        g * (gamma * rstd),
        sum_gxc * rstd,
        sum_g,
        -gamma * rstd * sum_g,
        -0.5 * gamma * rstd * rstd * rstd * sum_gxc,
    )
