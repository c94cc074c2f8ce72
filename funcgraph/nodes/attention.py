r"""Scaled dot-product attention with a memory-saving backward (the flash-attention trick).

Autodiff of attention keeps the `(seq, seq)` probability matrix of every head alive between the
forward and the backward pass. This node keeps only $q$, $k$, $v$, the output and the per-row
log-sum-exp $\ell$ (one number per query), and recomputes the probabilities
$P = e^{S - \ell}$ in the backward, where they are needed anyway.

Both passes also work on blocks of `block_size` queries at a time (a `lax.map` / `lax.scan`
over query blocks), so no `(seq, seq)` matrix is ever built whole: the largest temporary is
`(block_size, seq)` per head. Every query row sees all keys, so each block's softmax is exact.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from funcgraph.errors import NodeInputError, ShapeMismatchError
from funcgraph.node import Example, node
from funcgraph.nodes._util import grad_like, normal

__all__ = ["attention"]


def _check(q, k, v, block_size) -> None:
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
    if block_size is not None and (not isinstance(block_size, int) or block_size < 1):
        raise NodeInputError(
            f"node 'attention': block_size={block_size!r}, expected a positive int or None"
        )


def _scores(q, k, causal: bool, row0: jax.Array | int = 0):
    r"""Scaled scores $S = q k^\top / \sqrt d$ of the queries starting at row `row0`, with
    future keys masked out when causal."""
    s = jnp.matmul(q, jnp.swapaxes(k, -1, -2)) / math.sqrt(q.shape[-1])
    if causal:
        rows = row0 + jnp.arange(q.shape[-2])[:, None]
        cols = jnp.arange(k.shape[-2])[None, :]
        # A large finite value rather than -inf: exp underflows to exactly 0 either way, and
        # finite scores keep second derivatives free of inf - inf.
        s = jnp.where(cols <= rows, s, jnp.asarray(jnp.finfo(s.dtype).min, dtype=s.dtype))
    return s


def _logsumexp_rows(s):
    m = jax.lax.stop_gradient(jnp.max(s, axis=-1, keepdims=True))
    return jnp.log(jnp.sum(jnp.exp(s - m), axis=-1)) + m[..., 0]


def _n_blocks(length: int, block_size: int | None) -> int:
    return 1 if block_size is None or block_size >= length else -(-length // block_size)


def _to_blocks(x, n: int):
    """`(..., S, c)` -> `(n, ..., S / n, c)`, zero-padding S up to a multiple of n rows."""
    block = -(-x.shape[-2] // n)
    pad = n * block - x.shape[-2]
    if pad:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, pad), (0, 0)])
    return jnp.moveaxis(x.reshape((*x.shape[:-2], n, block, x.shape[-1])), -3, 0)


def _from_blocks(x, length: int):
    """Inverse of `_to_blocks`: `(n, ..., block, c)` -> `(..., length, c)`."""
    x = jnp.moveaxis(x, 0, -3)
    return x.reshape((*x.shape[:-3], -1, x.shape[-1]))[..., :length, :]


def _blockwise(f, q, block_size: int | None, *rest):
    """Apply `f(q_block, row0, *rest_blocks)` to blocks of query rows and join the results."""
    n = _n_blocks(q.shape[-2], block_size)
    if n == 1:
        return f(q, 0, *rest)
    blocks = [_to_blocks(x, n) for x in (q, *rest)]
    starts = jnp.arange(n) * blocks[0].shape[-2]
    outs = jax.lax.map(lambda a: f(a[0], a[1], *a[2:]), (blocks[0], starts, *blocks[1:]))
    return jax.tree.map(lambda o: _from_blocks(o, q.shape[-2]), outs)


def _forward(q, k, v, causal: bool, block_size: int | None):
    """The output and the row log-sum-exp, one block of queries at a time."""

    def attend(qb, row0):
        s = _scores(qb, k, causal, row0)
        lse = _logsumexp_rows(s)[..., None]
        return jnp.matmul(jnp.exp(s - lse), v), lse

    out, lse = _blockwise(attend, q, block_size)
    return out, lse[..., 0]


def _save(q, k, v, out, *, causal: bool = False, block_size: int | None = 128):
    # Exactly the forward's computation, output included, so that under jit XLA's common
    # subexpression elimination merges the two and the forward runs once.
    return (q, k, v, *_forward(q, k, v, causal, block_size))


def _attention_example(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    kq, kk, kv = jax.random.split(key, 3)
    return normal(kq, (2, 4, 3)), normal(kk, (2, 5, 3)), normal(kv, (2, 5, 2))


def _causal_blocked_example(key: jax.Array) -> Example:
    kq, kk, kv = jax.random.split(key, 3)
    qkv = (normal(kq, (2, 5, 3)), normal(kk, (2, 5, 3)), normal(kv, (2, 5, 3)))
    # Blocks of 2 queries over 5 rows: three blocks, the last one padded.
    return Example(qkv, {"causal": True, "block_size": 2})


@node(save=_save, example=[_attention_example, _causal_blocked_example])
def attention(q, k, v, *, causal: bool = False, block_size: int | None = 128):
    r"""Scaled dot-product attention over `(..., seq, d)` arrays: `q` is `(..., S_q, d)`, `k` is
    `(..., S_k, d)`, `v` is `(..., S_k, d_v)`; the output is `(..., S_q, d_v)`. Leading axes
    (batch, heads) broadcast. With `causal=True`, query $i$ attends only to keys $j \le i$.

    Saves $q, k, v$, the output $O$ and the row log-sum-exp $\ell$; the backward recomputes $P$.
    `block_size` (static) is how many queries both passes handle at once (`None`: all), which
    bounds the temporaries to `(block_size, S_k)` per head; it does not change the result.

    **Forward:** $S = \frac{q k^\top}{\sqrt d}$ (masked entries $-\infty$),
    $\ell_i = \log \sum_j e^{S_{ij}}$, $P = e^{S - \ell}$, $O = P v$

    **Backward:** $\frac{\partial L}{\partial v} = P^\top G$,
    $dP = G v^\top$, $D_i = \sum_c G_{ic} O_{ic}$, $dS = P \circ (dP - D)$,
    $\frac{\partial L}{\partial q} = \frac{dS\, k}{\sqrt d}$,
    $\frac{\partial L}{\partial k} = \frac{dS^\top q}{\sqrt d}$
    ($D_i = \sum_j P_{ij}\, dP_{ij}$ is computed from the output, without $P$). Over query
    blocks, $dq$ is computed block by block and $dk$, $dv$ are summed over blocks.
    """
    _check(q, k, v, block_size)
    return _forward(q, k, v, causal, block_size)[0]


@attention.backward
def _attention_backward(residuals, g, *, causal: bool = False, block_size: int | None = 128):
    q, k, v, out, lse = residuals
    vt = jnp.swapaxes(v, -1, -2)
    scale = 1 / math.sqrt(q.shape[-1])

    def block_grads(qb, gb, ob, lseb, row0):
        p = jnp.exp(_scores(qb, k, causal, row0) - lseb[..., None])
        dp = jnp.matmul(gb, vt)
        ds = p * (dp - jnp.sum(gb * ob, axis=-1, keepdims=True)) * scale
        pt = jnp.swapaxes(p, -1, -2)
        dst = jnp.swapaxes(ds, -1, -2)
        return jnp.matmul(ds, k), jnp.matmul(dst, qb), jnp.matmul(pt, gb)

    n = _n_blocks(q.shape[-2], block_size)
    if n == 1:
        dq, dk, dv = block_grads(q, g, out, lse, 0)
    else:
        # Padded query rows have g = 0, hence dS = 0: they add nothing to dk and dv.
        blocks = (
            _to_blocks(q, n),
            _to_blocks(g, n),
            _to_blocks(out, n),
            _to_blocks(lse[..., None], n)[..., 0],
        )
        starts = jnp.arange(n) * blocks[0].shape[-2]
        lead = jnp.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        dk0 = jnp.zeros((*lead, *k.shape[-2:]), dtype=k.dtype)
        dv0 = jnp.zeros((*lead, *v.shape[-2:]), dtype=v.dtype)

        def step(carry, xs):
            dqb, dkb, dvb = block_grads(*xs)
            return (carry[0] + dkb, carry[1] + dvb), dqb

        (dk, dv), dqs = jax.lax.scan(step, (dk0, dv0), (*blocks, starts))
        dq = _from_blocks(dqs, q.shape[-2])
    return grad_like(dq, q), grad_like(dk, k), grad_like(dv, v)
