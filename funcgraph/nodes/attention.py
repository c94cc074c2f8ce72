r"""Scaled dot-product attention with a memory-saving backward (the flash-attention trick).

Autodiff of attention keeps the `(seq, seq)` probability matrix of every head alive between the
forward and the backward pass. This node keeps only $q$, $k$, $v$, the output and the per-row
log-sum-exp $\ell$ (one number per query), and recomputes the probabilities
$P = e^{S - \ell}$ in the backward, where they are needed anyway.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from funcgraph.errors import ShapeMismatchError
from funcgraph.node import Example, node
from funcgraph.nodes._util import grad_like, normal

__all__ = ["attention"]


def _check(q, k, v) -> None:
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ShapeMismatchError(
            "node 'attention': q, k and v must be (..., seq, d); got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ShapeMismatchError(
            "node 'attention': expected q (..., S_q, d), k (..., S_k, d), v (..., S_k, d_v); got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )


def _scores(q, k, causal: bool):
    r"""Scaled scores $S = q k^\top / \sqrt d$, with future keys masked out when causal."""
    s = jnp.matmul(q, jnp.swapaxes(k, -1, -2)) / math.sqrt(q.shape[-1])
    if causal:
        rows = jnp.arange(q.shape[-2])[:, None]
        cols = jnp.arange(k.shape[-2])[None, :]
        # A large finite value rather than -inf: exp underflows to exactly 0 either way, and
        # finite scores keep second derivatives free of inf - inf.
        s = jnp.where(cols <= rows, s, jnp.asarray(jnp.finfo(s.dtype).min, dtype=s.dtype))
    return s


def _logsumexp_rows(s):
    m = jax.lax.stop_gradient(jnp.max(s, axis=-1, keepdims=True))
    return jnp.log(jnp.sum(jnp.exp(s - m), axis=-1)) + m[..., 0]


def _save(q, k, v, out, *, causal: bool = False):
    return q, k, v, out, _logsumexp_rows(_scores(q, k, causal))


def _attention_example(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    kq, kk, kv = jax.random.split(key, 3)
    return normal(kq, (2, 4, 3)), normal(kk, (2, 5, 3)), normal(kv, (2, 5, 2))


def _causal_example(key: jax.Array) -> Example:
    kq, kk, kv = jax.random.split(key, 3)
    return Example(
        (normal(kq, (2, 4, 3)), normal(kk, (2, 4, 3)), normal(kv, (2, 4, 3))), {"causal": True}
    )


@node(save=_save, example=[_attention_example, _causal_example])
def attention(q, k, v, *, causal: bool = False):
    r"""Scaled dot-product attention over `(..., seq, d)` arrays: `q` is `(..., S_q, d)`, `k` is
    `(..., S_k, d)`, `v` is `(..., S_k, d_v)`; the output is `(..., S_q, d_v)`. Leading axes
    (batch, heads) broadcast. With `causal=True`, query $i$ attends only to keys $j \le i$.

    Saves $q, k, v$, the output $O$ and the row log-sum-exp $\ell$; the backward recomputes $P$.

    **Forward:** $S = \frac{q k^\top}{\sqrt d}$ (masked entries $-\infty$),
    $\ell_i = \log \sum_j e^{S_{ij}}$, $P = e^{S - \ell}$, $O = P v$

    **Backward:** $\frac{\partial L}{\partial v} = P^\top G$,
    $dP = G v^\top$, $D_i = \sum_c G_{ic} O_{ic}$, $dS = P \circ (dP - D)$,
    $\frac{\partial L}{\partial q} = \frac{dS\, k}{\sqrt d}$,
    $\frac{\partial L}{\partial k} = \frac{dS^\top q}{\sqrt d}$
    ($D_i = \sum_j P_{ij}\, dP_{ij}$ is computed from the output, without $P$).
    """
    _check(q, k, v)
    s = _scores(q, k, causal)
    p = jnp.exp(s - _logsumexp_rows(s)[..., None])
    return jnp.matmul(p, v)


@attention.backward
def _attention_backward(residuals, g, *, causal: bool = False):
    q, k, v, out, lse = residuals
    p = jnp.exp(_scores(q, k, causal) - lse[..., None])
    dv = jnp.matmul(jnp.swapaxes(p, -1, -2), g)
    dp = jnp.matmul(g, jnp.swapaxes(v, -1, -2))
    d = jnp.sum(g * out, axis=-1, keepdims=True)
    ds = p * (dp - d) / math.sqrt(q.shape[-1])
    dq = jnp.matmul(ds, k)
    dk = jnp.matmul(jnp.swapaxes(ds, -1, -2), q)
    return grad_like(dq, q), grad_like(dk, k), grad_like(dv, v)
