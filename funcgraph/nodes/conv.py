r"""2-D convolution (NHWC input, HWIO kernel) with a hand-written backward made of convolutions.

Layouts: the input `x` is `(N, H, W, C_in)` (batch, height, width, channels), the kernel `w` is
`(K_h, K_w, C_in, C_out)` (height, width, in, out), the bias `b` is `(C_out,)`; the output is
`(N, H_out, W_out, C_out)`. The operation is a cross-correlation, as in every deep-learning
library.

The backward is two more convolutions: the input gradient is a *transposed* convolution (the
output gradient dilated by the stride, convolved with the spatially flipped kernel with in and
out channels swapped); the kernel gradient correlates the input with the output gradient, with
the batch axis playing the role of the contracted channel axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from funcgraph.errors import NodeInputError, ShapeMismatchError
from funcgraph.node import Example, node
from funcgraph.nodes._util import normal

__all__ = ["conv2d"]

Padding = str | int
_DIMS = ("NHWC", "HWIO", "NHWC")


def _two(v: int | Sequence[int], what: str) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    t = tuple(int(i) for i in v)
    if len(t) != 2:
        raise NodeInputError(f"node 'conv2d': {what}={v!r}, expected an int or a pair of ints")
    return t  # type: ignore[return-value]


def _pads(n: int, k: int, s: int, padding: Padding) -> tuple[int, int]:
    """Low and high padding of one spatial axis of size `n` for a kernel `k` and stride `s`."""
    if padding == "VALID":
        return 0, 0
    if padding == "SAME":
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        return total // 2, total - total // 2
    if isinstance(padding, int) and padding >= 0:
        return padding, padding
    raise NodeInputError(
        f"node 'conv2d': padding={padding!r}, expected 'SAME', 'VALID' or a non-negative int"
    )


def _geometry(x, w, stride, padding):
    if x.ndim != 4 or w.ndim != 4:
        raise ShapeMismatchError(
            f"node 'conv2d': expected x of shape (N, H, W, C_in) and w of shape "
            f"(K_h, K_w, C_in, C_out), got x {tuple(x.shape)} and w {tuple(w.shape)}"
        )
    if x.shape[3] != w.shape[2]:
        raise ShapeMismatchError(
            f"node 'conv2d': x has {x.shape[3]} input channels but w expects {w.shape[2]} "
            f"(x {tuple(x.shape)}, w {tuple(w.shape)} in HWIO layout)"
        )
    strides = _two(stride, "stride")
    pads = tuple(_pads(x.shape[1 + i], w.shape[i], strides[i], padding) for i in range(2))
    return strides, pads


def _conv_example(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    k1, k2, k3 = jax.random.split(key, 3)
    return normal(k1, (2, 5, 5, 3)), normal(k2, (3, 3, 3, 4)), normal(k3, (4,))


def _strided_example(key: jax.Array) -> Example:
    return Example(_conv_example(key), {"stride": 2, "padding": "VALID"})


@node(save="inputs", example=[_conv_example, _strided_example])
def conv2d(x, w, b, *, stride: int | Sequence[int] = 1, padding: Padding = "SAME"):
    r"""2-D convolution (cross-correlation) plus bias; NHWC input, HWIO kernel.

    **Arguments:**

    - `x`: input images, `(N, H, W, C_in)`.
    - `w`: kernel, `(K_h, K_w, C_in, C_out)`.
    - `b`: bias, `(C_out,)`.
    - `stride`: an int or a `(height, width)` pair (static).
    - `padding`: `"SAME"` (output size $\lceil H / s \rceil$), `"VALID"` (no padding) or an
      int (that many zeros on every side) (static).

    **Returns:** `(N, H_out, W_out, C_out)`.

    **Forward:** with $\tilde x$ the zero-padded input,
    $y_{n,i,j,o} = b_o + \sum_{u,v,c} \tilde x_{n,\, s i + u,\, s j + v,\, c}\; w_{u,v,c,o}$

    **Backward:**
    $\frac{\partial L}{\partial w_{u,v,c,o}} = \sum_{n,i,j} \tilde x_{n,\, s i+u,\, s j+v,\, c}
    \; g_{n,i,j,o}$,
    $\frac{\partial L}{\partial b_o} = \sum_{n,i,j} g_{n,i,j,o}$,
    $\frac{\partial L}{\partial \tilde x_{n,p,q,c}} = \sum_{u,v,o} \hat g_{n,\, p-u,\, q-v,\, o}
    \; w_{u,v,c,o}$ where $\hat g$ is $g$ dilated by the stride (a transposed convolution),
    cropped back to the unpadded input.
    """
    strides, pads = _geometry(x, w, stride, padding)
    y = jax.lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_DIMS)
    return y + b


@conv2d.backward
def _conv2d_backward(x, w, b, out, g, *, stride=1, padding="SAME"):
    strides, pads = _geometry(x, w, stride, padding)
    n_in = x.shape[1:3]
    n_out = g.shape[1:3]
    k = w.shape[:2]
    # Input gradient: transposed convolution. The dilated g has (n_out - 1) * s + 1 entries;
    # padding it so a full correlation with the flipped kernel lands back on the input grid.
    dx_pads = []
    for i in range(2):
        before = k[i] - 1 - pads[i][0]
        after = n_in[i] + pads[i][0] - (n_out[i] - 1) * strides[i] - 1
        dx_pads.append((before, after))
    dx = jax.lax.conv_general_dilated(
        g,
        jnp.flip(w, axis=(0, 1)),
        (1, 1),
        dx_pads,
        lhs_dilation=strides,
        dimension_numbers=("NHWC", "HWOI", "NHWC"),
    )
    # Kernel gradient: correlate x with g dilated by the stride; the batch axis is contracted
    # (x as "CHWN", g as "IHWO") and x's channels become the output's batch ("HWNC" = HWIO).
    dw_pads = []
    for i in range(2):
        hi = (n_out[i] - 1) * strides[i] + k[i] - n_in[i] - pads[i][0]
        dw_pads.append((pads[i][0], hi))
    dw = jax.lax.conv_general_dilated(
        x,
        g,
        (1, 1),
        dw_pads,
        rhs_dilation=strides,
        dimension_numbers=("CHWN", "IHWO", "HWNC"),
    )
    db = jnp.sum(g, axis=(0, 1, 2))
    return dx, dw, db
