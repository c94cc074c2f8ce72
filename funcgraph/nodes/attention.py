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
        rows = jnp.asarray(row0, jnp.int32) + jnp.arange(q.shape[-2], dtype=jnp.int32)[:, None]
        cols = jnp.arange(k.shape[-2], dtype=jnp.int32)[None, :]
        # A large finite value rather than -inf: exp underflows to exactly 0 either way, and
        # finite scores keep second derivatives free of inf - inf.
        s = jnp.where(cols <= rows, s, jnp.asarray(jnp.finfo(s.dtype).min, dtype=s.dtype))
    return s


def _logsumexp_rows(s):
    m = jax.lax.stop_gradient(jnp.max(s, axis=-1, keepdims=True))
    return jnp.log(jnp.sum(jnp.exp(s - m), axis=-1)) + m[..., 0]


def _blocks(length: int, block_size: int | None) -> tuple[int, int]:
    """The number of query blocks and their size (the last block may be padded)."""
    n = 1 if block_size is None or block_size >= length else -(-length // block_size)
    return n, -(-length // n)


def _pad_rows(x, rows: int):
    pad = rows - x.shape[-2]
    return x if pad == 0 else jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, pad), (0, 0)])


def _rows(x, row0, block: int):
    return jax.lax.dynamic_slice_in_dim(x, row0, block, axis=-2)


def _forward(q, k, v, causal: bool, block_size: int | None):
    """The output and the row log-sum-exp, one block of queries at a time."""

    def attend(qb, row0):
        s = _scores(qb, k, causal, row0)
        lse = _logsumexp_rows(s)[..., None]
        return jnp.matmul(jnp.exp(s - lse), v), lse

    n, block = _blocks(q.shape[-2], block_size)
    if n == 1:
        out, lse = attend(q, 0)
        return out, lse[..., 0]
    # A loop over row blocks of q, writing each block's rows into the outputs in place: no
    # (seq, seq) temporaries and no rearranged copies of q.
    qp = _pad_rows(q, n * block)
    lead = jnp.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    dtype = jnp.result_type(q, k, v)
    init = (
        jnp.zeros((*lead, n * block, v.shape[-1]), dtype),
        jnp.zeros((*lead, n * block, 1), dtype),
    )

    def body(i, acc):
        row0 = i * block
        parts = attend(_rows(qp, row0, block), row0)
        return tuple(
            jax.lax.dynamic_update_slice_in_dim(a, p, row0, axis=-2)
            for a, p in zip(acc, parts, strict=True)
        )

    out, lse = jax.lax.fori_loop(0, n, body, init)
    return out[..., : q.shape[-2], :], lse[..., : q.shape[-2], 0]


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

    **Arguments:**

    - `q`: queries, `(..., S_q, d)`.
    - `k`: keys, `(..., S_k, d)`.
    - `v`: values, `(..., S_k, d_v)`.
    - `causal`: mask out keys after each query (static).
    - `block_size`: how many queries both passes handle at once (`None`: all), which bounds
      the temporaries to `(block_size, S_k)` per head; it does not change the result (static).

    **Returns:** `(..., S_q, d_v)`.

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

    n, block = _blocks(q.shape[-2], block_size)
    if n == 1:
        dq, dk, dv = block_grads(q, g, out, lse, 0)
    else:
        # Padded query rows have g = 0, hence dS = 0: they add nothing to dk and dv.
        rows = n * block
        qp, gp, op = (_pad_rows(x, rows) for x in (q, g, out))
        lsep = _pad_rows(lse[..., None], rows)
        lead = jnp.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        init = (
            jnp.zeros((*lead, rows, q.shape[-1]), q.dtype),
            jnp.zeros((*lead, *k.shape[-2:]), k.dtype),
            jnp.zeros((*lead, *v.shape[-2:]), v.dtype),
        )

        def body(i, acc):
            row0 = i * block
            dqb, dkb, dvb = block_grads(
                _rows(qp, row0, block),
                _rows(gp, row0, block),
                _rows(op, row0, block),
                _rows(lsep, row0, block)[..., 0],
                row0,
            )
            dq = jax.lax.dynamic_update_slice_in_dim(acc[0], dqb, row0, axis=-2)
            return dq, acc[1] + dkb, acc[2] + dvb

        dq, dk, dv = jax.lax.fori_loop(0, n, body, init)
        dq = dq[..., : q.shape[-2], :]
    return grad_like(dq, q), grad_like(dk, k), grad_like(dv, v)
